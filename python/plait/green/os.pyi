"""Type stubs for plait.green.os."""

from collections.abc import Callable
from os import CLD_CONTINUED as CLD_CONTINUED
from os import CLD_DUMPED as CLD_DUMPED
from os import CLD_EXITED as CLD_EXITED
from os import CLD_KILLED as CLD_KILLED
from os import CLD_STOPPED as CLD_STOPPED
from os import CLD_TRAPPED as CLD_TRAPPED
from os import EFD_CLOEXEC as EFD_CLOEXEC
from os import EFD_NONBLOCK as EFD_NONBLOCK
from os import EFD_SEMAPHORE as EFD_SEMAPHORE
from os import EX_CANTCREAT as EX_CANTCREAT
from os import EX_CONFIG as EX_CONFIG
from os import EX_DATAERR as EX_DATAERR
from os import EX_IOERR as EX_IOERR
from os import EX_NOHOST as EX_NOHOST
from os import EX_NOINPUT as EX_NOINPUT
from os import EX_NOPERM as EX_NOPERM
from os import EX_NOUSER as EX_NOUSER
from os import EX_OK as EX_OK
from os import EX_OSERR as EX_OSERR
from os import EX_OSFILE as EX_OSFILE
from os import EX_PROTOCOL as EX_PROTOCOL
from os import EX_SOFTWARE as EX_SOFTWARE
from os import EX_TEMPFAIL as EX_TEMPFAIL
from os import EX_UNAVAILABLE as EX_UNAVAILABLE
from os import EX_USAGE as EX_USAGE
from os import F_LOCK as F_LOCK
from os import F_OK as F_OK
from os import F_TEST as F_TEST
from os import F_TLOCK as F_TLOCK
from os import F_ULOCK as F_ULOCK
from os import GRND_NONBLOCK as GRND_NONBLOCK
from os import GRND_RANDOM as GRND_RANDOM
from os import MFD_ALLOW_SEALING as MFD_ALLOW_SEALING
from os import MFD_CLOEXEC as MFD_CLOEXEC
from os import MFD_HUGE_1GB as MFD_HUGE_1GB
from os import MFD_HUGE_1MB as MFD_HUGE_1MB
from os import MFD_HUGE_2GB as MFD_HUGE_2GB
from os import MFD_HUGE_2MB as MFD_HUGE_2MB
from os import MFD_HUGE_8MB as MFD_HUGE_8MB
from os import MFD_HUGE_16GB as MFD_HUGE_16GB
from os import MFD_HUGE_16MB as MFD_HUGE_16MB
from os import MFD_HUGE_32MB as MFD_HUGE_32MB
from os import MFD_HUGE_64KB as MFD_HUGE_64KB
from os import MFD_HUGE_256MB as MFD_HUGE_256MB
from os import MFD_HUGE_512KB as MFD_HUGE_512KB
from os import MFD_HUGE_512MB as MFD_HUGE_512MB
from os import MFD_HUGE_MASK as MFD_HUGE_MASK
from os import MFD_HUGE_SHIFT as MFD_HUGE_SHIFT
from os import MFD_HUGETLB as MFD_HUGETLB
from os import NGROUPS_MAX as NGROUPS_MAX
from os import O_ACCMODE as O_ACCMODE
from os import O_APPEND as O_APPEND
from os import O_ASYNC as O_ASYNC
from os import O_CLOEXEC as O_CLOEXEC
from os import O_CREAT as O_CREAT
from os import O_DIRECT as O_DIRECT
from os import O_DIRECTORY as O_DIRECTORY
from os import O_DSYNC as O_DSYNC
from os import O_EXCL as O_EXCL
from os import O_FSYNC as O_FSYNC
from os import O_LARGEFILE as O_LARGEFILE
from os import O_NDELAY as O_NDELAY
from os import O_NOATIME as O_NOATIME
from os import O_NOCTTY as O_NOCTTY
from os import O_NOFOLLOW as O_NOFOLLOW
from os import O_NONBLOCK as O_NONBLOCK
from os import O_PATH as O_PATH
from os import O_RDONLY as O_RDONLY
from os import O_RDWR as O_RDWR
from os import O_RSYNC as O_RSYNC
from os import O_SYNC as O_SYNC
from os import O_TMPFILE as O_TMPFILE
from os import O_TRUNC as O_TRUNC
from os import O_WRONLY as O_WRONLY
from os import P_ALL as P_ALL
from os import P_NOWAIT as P_NOWAIT
from os import P_NOWAITO as P_NOWAITO
from os import P_PGID as P_PGID
from os import P_PID as P_PID
from os import P_PIDFD as P_PIDFD
from os import P_WAIT as P_WAIT
from os import POSIX_FADV_DONTNEED as POSIX_FADV_DONTNEED
from os import POSIX_FADV_NOREUSE as POSIX_FADV_NOREUSE
from os import POSIX_FADV_NORMAL as POSIX_FADV_NORMAL
from os import POSIX_FADV_RANDOM as POSIX_FADV_RANDOM
from os import POSIX_FADV_SEQUENTIAL as POSIX_FADV_SEQUENTIAL
from os import POSIX_FADV_WILLNEED as POSIX_FADV_WILLNEED
from os import POSIX_SPAWN_CLOSE as POSIX_SPAWN_CLOSE
from os import POSIX_SPAWN_DUP2 as POSIX_SPAWN_DUP2
from os import POSIX_SPAWN_OPEN as POSIX_SPAWN_OPEN
from os import PRIO_PGRP as PRIO_PGRP
from os import PRIO_PROCESS as PRIO_PROCESS
from os import PRIO_USER as PRIO_USER
from os import R_OK as R_OK
from os import RTLD_DEEPBIND as RTLD_DEEPBIND
from os import RTLD_GLOBAL as RTLD_GLOBAL
from os import RTLD_LAZY as RTLD_LAZY
from os import RTLD_LOCAL as RTLD_LOCAL
from os import RTLD_NODELETE as RTLD_NODELETE
from os import RTLD_NOLOAD as RTLD_NOLOAD
from os import RTLD_NOW as RTLD_NOW
from os import RWF_APPEND as RWF_APPEND
from os import RWF_DSYNC as RWF_DSYNC
from os import RWF_HIPRI as RWF_HIPRI
from os import RWF_NOWAIT as RWF_NOWAIT
from os import RWF_SYNC as RWF_SYNC
from os import SCHED_BATCH as SCHED_BATCH
from os import SCHED_FIFO as SCHED_FIFO
from os import SCHED_IDLE as SCHED_IDLE
from os import SCHED_OTHER as SCHED_OTHER
from os import SCHED_RESET_ON_FORK as SCHED_RESET_ON_FORK
from os import SCHED_RR as SCHED_RR
from os import SEEK_CUR as SEEK_CUR
from os import SEEK_DATA as SEEK_DATA
from os import SEEK_END as SEEK_END
from os import SEEK_HOLE as SEEK_HOLE
from os import SEEK_SET as SEEK_SET
from os import SPLICE_F_MORE as SPLICE_F_MORE
from os import SPLICE_F_MOVE as SPLICE_F_MOVE
from os import SPLICE_F_NONBLOCK as SPLICE_F_NONBLOCK
from os import ST_APPEND as ST_APPEND
from os import ST_MANDLOCK as ST_MANDLOCK
from os import ST_NOATIME as ST_NOATIME
from os import ST_NODEV as ST_NODEV
from os import ST_NODIRATIME as ST_NODIRATIME
from os import ST_NOEXEC as ST_NOEXEC
from os import ST_NOSUID as ST_NOSUID
from os import ST_RDONLY as ST_RDONLY
from os import ST_RELATIME as ST_RELATIME
from os import ST_SYNCHRONOUS as ST_SYNCHRONOUS
from os import ST_WRITE as ST_WRITE
from os import TMP_MAX as TMP_MAX
from os import W_OK as W_OK
from os import WCONTINUED as WCONTINUED
from os import WCOREDUMP as WCOREDUMP
from os import WEXITED as WEXITED
from os import WEXITSTATUS as WEXITSTATUS
from os import WIFCONTINUED as WIFCONTINUED
from os import WIFEXITED as WIFEXITED
from os import WIFSIGNALED as WIFSIGNALED
from os import WIFSTOPPED as WIFSTOPPED
from os import WNOHANG as WNOHANG
from os import WNOWAIT as WNOWAIT
from os import WSTOPPED as WSTOPPED
from os import WSTOPSIG as WSTOPSIG
from os import WTERMSIG as WTERMSIG
from os import WUNTRACED as WUNTRACED
from os import X_OK as X_OK
from os import XATTR_CREATE as XATTR_CREATE
from os import XATTR_REPLACE as XATTR_REPLACE
from os import XATTR_SIZE_MAX as XATTR_SIZE_MAX
from os import DirEntry as DirEntry
from os import _exit as _exit
from os import abort as abort
from os import access as access
from os import altsep as altsep
from os import chdir as chdir
from os import chmod as chmod
from os import chown as chown
from os import chroot as chroot
from os import close as close
from os import closerange as closerange
from os import confstr as confstr
from os import confstr_names as confstr_names
from os import copy_file_range as copy_file_range
from os import cpu_count as cpu_count
from os import ctermid as ctermid
from os import curdir as curdir
from os import defpath as defpath
from os import device_encoding as device_encoding
from os import devnull as devnull
from os import dup as dup
from os import dup2 as dup2
from os import environ as environ
from os import environb as environb
from os import error as error
from os import eventfd as eventfd
from os import eventfd_read as eventfd_read
from os import eventfd_write as eventfd_write
from os import execl as execl
from os import execle as execle
from os import execlp as execlp
from os import execlpe as execlpe
from os import execv as execv
from os import execve as execve
from os import execvp as execvp
from os import execvpe as execvpe
from os import extsep as extsep
from os import fchdir as fchdir
from os import fchmod as fchmod
from os import fchown as fchown
from os import fdatasync as fdatasync
from os import fdopen as fdopen
from os import fpathconf as fpathconf
from os import fsdecode as fsdecode
from os import fsencode as fsencode
from os import fspath as fspath
from os import fstat as fstat
from os import fstatvfs as fstatvfs
from os import fsync as fsync
from os import ftruncate as ftruncate
from os import fwalk as fwalk
from os import get_blocking as get_blocking
from os import get_exec_path as get_exec_path
from os import get_inheritable as get_inheritable
from os import get_terminal_size as get_terminal_size
from os import getcwd as getcwd
from os import getcwdb as getcwdb
from os import getegid as getegid
from os import getenv as getenv
from os import getenvb as getenvb
from os import geteuid as geteuid
from os import getgid as getgid
from os import getgrouplist as getgrouplist
from os import getgroups as getgroups
from os import getloadavg as getloadavg
from os import getlogin as getlogin
from os import getpgid as getpgid
from os import getpgrp as getpgrp
from os import getpid as getpid
from os import getppid as getppid
from os import getpriority as getpriority
from os import getrandom as getrandom
from os import getresgid as getresgid
from os import getresuid as getresuid
from os import getsid as getsid
from os import getuid as getuid
from os import getxattr as getxattr
from os import initgroups as initgroups
from os import isatty as isatty
from os import kill as kill
from os import killpg as killpg
from os import lchown as lchown
from os import linesep as linesep
from os import link as link
from os import listdir as listdir
from os import listxattr as listxattr
from os import lockf as lockf
from os import login_tty as login_tty
from os import lseek as lseek
from os import lstat as lstat
from os import major as major
from os import makedev as makedev
from os import makedirs as makedirs
from os import memfd_create as memfd_create
from os import minor as minor
from os import mkdir as mkdir
from os import mkfifo as mkfifo
from os import mknod as mknod
from os import name as name
from os import nice as nice
from os import open as open
from os import openpty as openpty
from os import pardir as pardir
from os import path as path
from os import pathconf as pathconf
from os import pathconf_names as pathconf_names
from os import pathsep as pathsep
from os import pidfd_open as pidfd_open
from os import pipe as pipe
from os import pipe2 as pipe2
from os import popen as popen
from os import posix_fadvise as posix_fadvise
from os import posix_fallocate as posix_fallocate
from os import posix_spawn as posix_spawn
from os import posix_spawnp as posix_spawnp
from os import pread as pread
from os import preadv as preadv
from os import putenv as putenv
from os import pwrite as pwrite
from os import pwritev as pwritev
from os import read as read
from os import readlink as readlink
from os import readv as readv
from os import register_at_fork as register_at_fork
from os import remove as remove
from os import removedirs as removedirs
from os import removexattr as removexattr
from os import rename as rename
from os import renames as renames
from os import replace as replace
from os import rmdir as rmdir
from os import scandir as scandir
from os import sched_get_priority_max as sched_get_priority_max
from os import sched_get_priority_min as sched_get_priority_min
from os import sched_getaffinity as sched_getaffinity
from os import sched_getparam as sched_getparam
from os import sched_getscheduler as sched_getscheduler
from os import sched_param as sched_param
from os import sched_rr_get_interval as sched_rr_get_interval
from os import sched_setaffinity as sched_setaffinity
from os import sched_setparam as sched_setparam
from os import sched_setscheduler as sched_setscheduler
from os import sched_yield as sched_yield
from os import sendfile as sendfile
from os import sep as sep
from os import set_blocking as set_blocking
from os import set_inheritable as set_inheritable
from os import setegid as setegid
from os import seteuid as seteuid
from os import setgid as setgid
from os import setgroups as setgroups
from os import setpgid as setpgid
from os import setpgrp as setpgrp
from os import setpriority as setpriority
from os import setregid as setregid
from os import setresgid as setresgid
from os import setresuid as setresuid
from os import setreuid as setreuid
from os import setsid as setsid
from os import setuid as setuid
from os import setxattr as setxattr
from os import spawnl as spawnl
from os import spawnle as spawnle
from os import spawnlp as spawnlp
from os import spawnlpe as spawnlpe
from os import spawnv as spawnv
from os import spawnve as spawnve
from os import spawnvp as spawnvp
from os import spawnvpe as spawnvpe
from os import splice as splice
from os import stat as stat
from os import stat_result as stat_result
from os import statvfs as statvfs
from os import statvfs_result as statvfs_result
from os import strerror as strerror
from os import supports_bytes_environ as supports_bytes_environ
from os import symlink as symlink
from os import sync as sync
from os import sysconf as sysconf
from os import sysconf_names as sysconf_names
from os import system as system
from os import tcgetpgrp as tcgetpgrp
from os import tcsetpgrp as tcsetpgrp
from os import terminal_size as terminal_size
from os import times as times
from os import times_result as times_result
from os import truncate as truncate
from os import ttyname as ttyname
from os import umask as umask
from os import uname as uname
from os import uname_result as uname_result
from os import unlink as unlink
from os import unsetenv as unsetenv
from os import urandom as urandom
from os import utime as utime
from os import wait as wait
from os import wait3 as wait3
from os import wait4 as wait4
from os import waitid as waitid
from os import waitid_result as waitid_result
from os import waitstatus_to_exitcode as waitstatus_to_exitcode
from os import walk as walk
from os import write as write
from os import writev as writev
from typing import Any

from ._hub import Hub

ignored_errors: list[int]

def fork() -> int: ...
def fork_gevent() -> int: ...
def fork_and_watch(
    callback: Callable[[Any], object] | None = None,
    loop: Any = None,
    ref: bool = False,
    fork: Callable[[], int] = ...,
) -> int: ...
def forkpty() -> tuple[int, int]: ...
def forkpty_gevent() -> tuple[int, int]: ...
def waitpid(pid: int, options: int) -> tuple[int, int]: ...
def make_nonblocking(fd: int) -> bool | None: ...
def nb_read(fd: int, n: int) -> bytes: ...
def nb_write(fd: int, buf: Any) -> int: ...
def tp_read(fd: int, n: int) -> bytes: ...
def tp_write(fd: int, buf: Any) -> int: ...
def reinit(hub: Hub | None = None) -> None: ...

__implements__: list[str]
__extensions__: list[str]
__imports__: list[str]
__all__ = [
    "CLD_CONTINUED",
    "CLD_DUMPED",
    "CLD_EXITED",
    "CLD_KILLED",
    "CLD_STOPPED",
    "CLD_TRAPPED",
    "EFD_CLOEXEC",
    "EFD_NONBLOCK",
    "EFD_SEMAPHORE",
    "EX_CANTCREAT",
    "EX_CONFIG",
    "EX_DATAERR",
    "EX_IOERR",
    "EX_NOHOST",
    "EX_NOINPUT",
    "EX_NOPERM",
    "EX_NOUSER",
    "EX_OK",
    "EX_OSERR",
    "EX_OSFILE",
    "EX_PROTOCOL",
    "EX_SOFTWARE",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "F_LOCK",
    "F_OK",
    "F_TEST",
    "F_TLOCK",
    "F_ULOCK",
    "GRND_NONBLOCK",
    "GRND_RANDOM",
    "MFD_ALLOW_SEALING",
    "MFD_CLOEXEC",
    "MFD_HUGETLB",
    "MFD_HUGE_1GB",
    "MFD_HUGE_1MB",
    "MFD_HUGE_2GB",
    "MFD_HUGE_2MB",
    "MFD_HUGE_8MB",
    "MFD_HUGE_16GB",
    "MFD_HUGE_16MB",
    "MFD_HUGE_32MB",
    "MFD_HUGE_64KB",
    "MFD_HUGE_256MB",
    "MFD_HUGE_512KB",
    "MFD_HUGE_512MB",
    "MFD_HUGE_MASK",
    "MFD_HUGE_SHIFT",
    "NGROUPS_MAX",
    "O_ACCMODE",
    "O_APPEND",
    "O_ASYNC",
    "O_CLOEXEC",
    "O_CREAT",
    "O_DIRECT",
    "O_DIRECTORY",
    "O_DSYNC",
    "O_EXCL",
    "O_FSYNC",
    "O_LARGEFILE",
    "O_NDELAY",
    "O_NOATIME",
    "O_NOCTTY",
    "O_NOFOLLOW",
    "O_NONBLOCK",
    "O_PATH",
    "O_RDONLY",
    "O_RDWR",
    "O_RSYNC",
    "O_SYNC",
    "O_TMPFILE",
    "O_TRUNC",
    "O_WRONLY",
    "POSIX_FADV_DONTNEED",
    "POSIX_FADV_NOREUSE",
    "POSIX_FADV_NORMAL",
    "POSIX_FADV_RANDOM",
    "POSIX_FADV_SEQUENTIAL",
    "POSIX_FADV_WILLNEED",
    "POSIX_SPAWN_CLOSE",
    "POSIX_SPAWN_DUP2",
    "POSIX_SPAWN_OPEN",
    "PRIO_PGRP",
    "PRIO_PROCESS",
    "PRIO_USER",
    "P_ALL",
    "P_NOWAIT",
    "P_NOWAITO",
    "P_PGID",
    "P_PID",
    "P_PIDFD",
    "P_WAIT",
    "RTLD_DEEPBIND",
    "RTLD_GLOBAL",
    "RTLD_LAZY",
    "RTLD_LOCAL",
    "RTLD_NODELETE",
    "RTLD_NOLOAD",
    "RTLD_NOW",
    "RWF_APPEND",
    "RWF_DSYNC",
    "RWF_HIPRI",
    "RWF_NOWAIT",
    "RWF_SYNC",
    "R_OK",
    "SCHED_BATCH",
    "SCHED_FIFO",
    "SCHED_IDLE",
    "SCHED_OTHER",
    "SCHED_RESET_ON_FORK",
    "SCHED_RR",
    "SEEK_CUR",
    "SEEK_DATA",
    "SEEK_END",
    "SEEK_HOLE",
    "SEEK_SET",
    "SPLICE_F_MORE",
    "SPLICE_F_MOVE",
    "SPLICE_F_NONBLOCK",
    "ST_APPEND",
    "ST_MANDLOCK",
    "ST_NOATIME",
    "ST_NODEV",
    "ST_NODIRATIME",
    "ST_NOEXEC",
    "ST_NOSUID",
    "ST_RDONLY",
    "ST_RELATIME",
    "ST_SYNCHRONOUS",
    "ST_WRITE",
    "TMP_MAX",
    "WCONTINUED",
    "WCOREDUMP",
    "WEXITED",
    "WEXITSTATUS",
    "WIFCONTINUED",
    "WIFEXITED",
    "WIFSIGNALED",
    "WIFSTOPPED",
    "WNOHANG",
    "WNOWAIT",
    "WSTOPPED",
    "WSTOPSIG",
    "WTERMSIG",
    "WUNTRACED",
    "W_OK",
    "XATTR_CREATE",
    "XATTR_REPLACE",
    "XATTR_SIZE_MAX",
    "X_OK",
    "DirEntry",
    "_exit",
    "abort",
    "access",
    "altsep",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "close",
    "closerange",
    "confstr",
    "confstr_names",
    "copy_file_range",
    "cpu_count",
    "ctermid",
    "curdir",
    "defpath",
    "device_encoding",
    "devnull",
    "dup",
    "dup2",
    "environ",
    "environb",
    "error",
    "eventfd",
    "eventfd_read",
    "eventfd_write",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "extsep",
    "fchdir",
    "fchmod",
    "fchown",
    "fdatasync",
    "fdopen",
    "fork",
    "fork_and_watch",
    "fork_gevent",
    "forkpty",
    "forkpty_gevent",
    "fpathconf",
    "fsdecode",
    "fsencode",
    "fspath",
    "fstat",
    "fstatvfs",
    "fsync",
    "ftruncate",
    "fwalk",
    "get_blocking",
    "get_exec_path",
    "get_inheritable",
    "get_terminal_size",
    "getcwd",
    "getcwdb",
    "getegid",
    "getenv",
    "getenvb",
    "geteuid",
    "getgid",
    "getgrouplist",
    "getgroups",
    "getloadavg",
    "getlogin",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getsid",
    "getuid",
    "getxattr",
    "initgroups",
    "isatty",
    "kill",
    "killpg",
    "lchown",
    "linesep",
    "link",
    "listdir",
    "listxattr",
    "lockf",
    "login_tty",
    "lseek",
    "lstat",
    "major",
    "make_nonblocking",
    "makedev",
    "makedirs",
    "memfd_create",
    "minor",
    "mkdir",
    "mkfifo",
    "mknod",
    "name",
    "nb_read",
    "nb_write",
    "nice",
    "open",
    "openpty",
    "pardir",
    "path",
    "pathconf",
    "pathconf_names",
    "pathsep",
    "pidfd_open",
    "pipe",
    "pipe2",
    "popen",
    "posix_fadvise",
    "posix_fallocate",
    "posix_spawn",
    "posix_spawnp",
    "pread",
    "preadv",
    "putenv",
    "pwrite",
    "pwritev",
    "read",
    "readlink",
    "readv",
    "register_at_fork",
    "reinit",
    "remove",
    "removedirs",
    "removexattr",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_param",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "sendfile",
    "sep",
    "set_blocking",
    "set_inheritable",
    "setegid",
    "seteuid",
    "setgid",
    "setgroups",
    "setpgid",
    "setpgrp",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setsid",
    "setuid",
    "setxattr",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "splice",
    "stat",
    "stat_result",
    "statvfs",
    "statvfs_result",
    "strerror",
    "supports_bytes_environ",
    "symlink",
    "sync",
    "sysconf",
    "sysconf_names",
    "system",
    "tcgetpgrp",
    "tcsetpgrp",
    "terminal_size",
    "times",
    "times_result",
    "tp_read",
    "tp_write",
    "truncate",
    "ttyname",
    "umask",
    "uname",
    "uname_result",
    "unlink",
    "unsetenv",
    "urandom",
    "utime",
    "wait",
    "wait3",
    "wait4",
    "waitid",
    "waitid_result",
    "waitpid",
    "waitstatus_to_exitcode",
    "walk",
    "write",
    "writev",
]
