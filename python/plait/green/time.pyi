"""Type stubs for plait.green.time."""

from time import CLOCK_BOOTTIME as CLOCK_BOOTTIME
from time import CLOCK_MONOTONIC as CLOCK_MONOTONIC
from time import CLOCK_MONOTONIC_RAW as CLOCK_MONOTONIC_RAW
from time import CLOCK_PROCESS_CPUTIME_ID as CLOCK_PROCESS_CPUTIME_ID
from time import CLOCK_REALTIME as CLOCK_REALTIME
from time import CLOCK_TAI as CLOCK_TAI
from time import CLOCK_THREAD_CPUTIME_ID as CLOCK_THREAD_CPUTIME_ID
from time import altzone as altzone
from time import asctime as asctime
from time import clock_getres as clock_getres
from time import clock_gettime as clock_gettime
from time import clock_gettime_ns as clock_gettime_ns
from time import clock_settime as clock_settime
from time import clock_settime_ns as clock_settime_ns
from time import ctime as ctime
from time import daylight as daylight
from time import get_clock_info as get_clock_info
from time import gmtime as gmtime
from time import localtime as localtime
from time import mktime as mktime
from time import monotonic as monotonic
from time import monotonic_ns as monotonic_ns
from time import perf_counter as perf_counter
from time import perf_counter_ns as perf_counter_ns
from time import process_time as process_time
from time import process_time_ns as process_time_ns
from time import pthread_getcpuclockid as pthread_getcpuclockid
from time import strftime as strftime
from time import strptime as strptime
from time import struct_time as struct_time
from time import thread_time as thread_time
from time import thread_time_ns as thread_time_ns
from time import time as time
from time import time_ns as time_ns
from time import timezone as timezone
from time import tzname as tzname
from time import tzset as tzset

def sleep(seconds: float = 0, ref: bool = True) -> None: ...

__implements__: list[str]
__imports__: list[str]
__all__ = [
    "CLOCK_BOOTTIME",
    "CLOCK_MONOTONIC",
    "CLOCK_MONOTONIC_RAW",
    "CLOCK_PROCESS_CPUTIME_ID",
    "CLOCK_REALTIME",
    "CLOCK_TAI",
    "CLOCK_THREAD_CPUTIME_ID",
    "altzone",
    "asctime",
    "clock_getres",
    "clock_gettime",
    "clock_gettime_ns",
    "clock_settime",
    "clock_settime_ns",
    "ctime",
    "daylight",
    "get_clock_info",
    "gmtime",
    "localtime",
    "mktime",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "process_time_ns",
    "pthread_getcpuclockid",
    "sleep",
    "strftime",
    "strptime",
    "struct_time",
    "thread_time",
    "thread_time_ns",
    "time",
    "time_ns",
    "timezone",
    "tzname",
    "tzset",
]
