"""Type stubs for plait.green.socket."""

import socket as _stdsocket
from socket import AF_ALG as AF_ALG
from socket import AF_APPLETALK as AF_APPLETALK
from socket import AF_ASH as AF_ASH
from socket import AF_ATMPVC as AF_ATMPVC
from socket import AF_ATMSVC as AF_ATMSVC
from socket import AF_AX25 as AF_AX25
from socket import AF_BRIDGE as AF_BRIDGE
from socket import AF_CAN as AF_CAN
from socket import AF_ECONET as AF_ECONET
from socket import AF_INET as AF_INET
from socket import AF_INET6 as AF_INET6
from socket import AF_IPX as AF_IPX
from socket import AF_IRDA as AF_IRDA
from socket import AF_KEY as AF_KEY
from socket import AF_LLC as AF_LLC
from socket import AF_NETBEUI as AF_NETBEUI
from socket import AF_NETLINK as AF_NETLINK
from socket import AF_NETROM as AF_NETROM
from socket import AF_PACKET as AF_PACKET
from socket import AF_PPPOX as AF_PPPOX
from socket import AF_QIPCRTR as AF_QIPCRTR
from socket import AF_RDS as AF_RDS
from socket import AF_ROSE as AF_ROSE
from socket import AF_ROUTE as AF_ROUTE
from socket import AF_SECURITY as AF_SECURITY
from socket import AF_SNA as AF_SNA
from socket import AF_TIPC as AF_TIPC
from socket import AF_UNIX as AF_UNIX
from socket import AF_UNSPEC as AF_UNSPEC
from socket import AF_VSOCK as AF_VSOCK
from socket import AF_WANPIPE as AF_WANPIPE
from socket import AF_X25 as AF_X25
from socket import AI_ADDRCONFIG as AI_ADDRCONFIG
from socket import AI_ALL as AI_ALL
from socket import AI_CANONNAME as AI_CANONNAME
from socket import AI_NUMERICHOST as AI_NUMERICHOST
from socket import AI_NUMERICSERV as AI_NUMERICSERV
from socket import AI_PASSIVE as AI_PASSIVE
from socket import AI_V4MAPPED as AI_V4MAPPED
from socket import ALG_OP_DECRYPT as ALG_OP_DECRYPT
from socket import ALG_OP_ENCRYPT as ALG_OP_ENCRYPT
from socket import ALG_OP_SIGN as ALG_OP_SIGN
from socket import ALG_OP_VERIFY as ALG_OP_VERIFY
from socket import ALG_SET_AEAD_ASSOCLEN as ALG_SET_AEAD_ASSOCLEN
from socket import ALG_SET_AEAD_AUTHSIZE as ALG_SET_AEAD_AUTHSIZE
from socket import ALG_SET_IV as ALG_SET_IV
from socket import ALG_SET_KEY as ALG_SET_KEY
from socket import ALG_SET_OP as ALG_SET_OP
from socket import ALG_SET_PUBKEY as ALG_SET_PUBKEY
from socket import CAN_BCM as CAN_BCM
from socket import CAN_BCM_CAN_FD_FRAME as CAN_BCM_CAN_FD_FRAME
from socket import CAN_BCM_RX_ANNOUNCE_RESUME as CAN_BCM_RX_ANNOUNCE_RESUME
from socket import CAN_BCM_RX_CHANGED as CAN_BCM_RX_CHANGED
from socket import CAN_BCM_RX_CHECK_DLC as CAN_BCM_RX_CHECK_DLC
from socket import CAN_BCM_RX_DELETE as CAN_BCM_RX_DELETE
from socket import CAN_BCM_RX_FILTER_ID as CAN_BCM_RX_FILTER_ID
from socket import CAN_BCM_RX_NO_AUTOTIMER as CAN_BCM_RX_NO_AUTOTIMER
from socket import CAN_BCM_RX_READ as CAN_BCM_RX_READ
from socket import CAN_BCM_RX_RTR_FRAME as CAN_BCM_RX_RTR_FRAME
from socket import CAN_BCM_RX_SETUP as CAN_BCM_RX_SETUP
from socket import CAN_BCM_RX_STATUS as CAN_BCM_RX_STATUS
from socket import CAN_BCM_RX_TIMEOUT as CAN_BCM_RX_TIMEOUT
from socket import CAN_BCM_SETTIMER as CAN_BCM_SETTIMER
from socket import CAN_BCM_STARTTIMER as CAN_BCM_STARTTIMER
from socket import CAN_BCM_TX_ANNOUNCE as CAN_BCM_TX_ANNOUNCE
from socket import CAN_BCM_TX_COUNTEVT as CAN_BCM_TX_COUNTEVT
from socket import CAN_BCM_TX_CP_CAN_ID as CAN_BCM_TX_CP_CAN_ID
from socket import CAN_BCM_TX_DELETE as CAN_BCM_TX_DELETE
from socket import CAN_BCM_TX_EXPIRED as CAN_BCM_TX_EXPIRED
from socket import CAN_BCM_TX_READ as CAN_BCM_TX_READ
from socket import CAN_BCM_TX_RESET_MULTI_IDX as CAN_BCM_TX_RESET_MULTI_IDX
from socket import CAN_BCM_TX_SEND as CAN_BCM_TX_SEND
from socket import CAN_BCM_TX_SETUP as CAN_BCM_TX_SETUP
from socket import CAN_BCM_TX_STATUS as CAN_BCM_TX_STATUS
from socket import CAN_EFF_FLAG as CAN_EFF_FLAG
from socket import CAN_EFF_MASK as CAN_EFF_MASK
from socket import CAN_ERR_FLAG as CAN_ERR_FLAG
from socket import CAN_ERR_MASK as CAN_ERR_MASK
from socket import CAN_ISOTP as CAN_ISOTP
from socket import CAN_J1939 as CAN_J1939
from socket import CAN_RAW as CAN_RAW
from socket import CAN_RAW_FD_FRAMES as CAN_RAW_FD_FRAMES
from socket import CAN_RAW_FILTER as CAN_RAW_FILTER
from socket import CAN_RAW_JOIN_FILTERS as CAN_RAW_JOIN_FILTERS
from socket import CAN_RAW_LOOPBACK as CAN_RAW_LOOPBACK
from socket import CAN_RAW_RECV_OWN_MSGS as CAN_RAW_RECV_OWN_MSGS
from socket import CAN_RTR_FLAG as CAN_RTR_FLAG
from socket import CAN_SFF_MASK as CAN_SFF_MASK
from socket import CAPI as CAPI
from socket import CMSG_LEN as CMSG_LEN
from socket import CMSG_SPACE as CMSG_SPACE
from socket import EAI_ADDRFAMILY as EAI_ADDRFAMILY
from socket import EAI_AGAIN as EAI_AGAIN
from socket import EAI_BADFLAGS as EAI_BADFLAGS
from socket import EAI_FAIL as EAI_FAIL
from socket import EAI_FAMILY as EAI_FAMILY
from socket import EAI_MEMORY as EAI_MEMORY
from socket import EAI_NODATA as EAI_NODATA
from socket import EAI_NONAME as EAI_NONAME
from socket import EAI_OVERFLOW as EAI_OVERFLOW
from socket import EAI_SERVICE as EAI_SERVICE
from socket import EAI_SOCKTYPE as EAI_SOCKTYPE
from socket import EAI_SYSTEM as EAI_SYSTEM
from socket import INADDR_ALLHOSTS_GROUP as INADDR_ALLHOSTS_GROUP
from socket import INADDR_ANY as INADDR_ANY
from socket import INADDR_BROADCAST as INADDR_BROADCAST
from socket import INADDR_LOOPBACK as INADDR_LOOPBACK
from socket import INADDR_MAX_LOCAL_GROUP as INADDR_MAX_LOCAL_GROUP
from socket import INADDR_NONE as INADDR_NONE
from socket import INADDR_UNSPEC_GROUP as INADDR_UNSPEC_GROUP
from socket import IOCTL_VM_SOCKETS_GET_LOCAL_CID as IOCTL_VM_SOCKETS_GET_LOCAL_CID
from socket import IP_ADD_MEMBERSHIP as IP_ADD_MEMBERSHIP
from socket import IP_BIND_ADDRESS_NO_PORT as IP_BIND_ADDRESS_NO_PORT
from socket import IP_DEFAULT_MULTICAST_LOOP as IP_DEFAULT_MULTICAST_LOOP
from socket import IP_DEFAULT_MULTICAST_TTL as IP_DEFAULT_MULTICAST_TTL
from socket import IP_DROP_MEMBERSHIP as IP_DROP_MEMBERSHIP
from socket import IP_HDRINCL as IP_HDRINCL
from socket import IP_MAX_MEMBERSHIPS as IP_MAX_MEMBERSHIPS
from socket import IP_MULTICAST_IF as IP_MULTICAST_IF
from socket import IP_MULTICAST_LOOP as IP_MULTICAST_LOOP
from socket import IP_MULTICAST_TTL as IP_MULTICAST_TTL
from socket import IP_OPTIONS as IP_OPTIONS
from socket import IP_RECVOPTS as IP_RECVOPTS
from socket import IP_RECVRETOPTS as IP_RECVRETOPTS
from socket import IP_RECVTOS as IP_RECVTOS
from socket import IP_RETOPTS as IP_RETOPTS
from socket import IP_TOS as IP_TOS
from socket import IP_TRANSPARENT as IP_TRANSPARENT
from socket import IP_TTL as IP_TTL
from socket import IPPORT_RESERVED as IPPORT_RESERVED
from socket import IPPORT_USERRESERVED as IPPORT_USERRESERVED
from socket import IPPROTO_AH as IPPROTO_AH
from socket import IPPROTO_DSTOPTS as IPPROTO_DSTOPTS
from socket import IPPROTO_EGP as IPPROTO_EGP
from socket import IPPROTO_ESP as IPPROTO_ESP
from socket import IPPROTO_FRAGMENT as IPPROTO_FRAGMENT
from socket import IPPROTO_GRE as IPPROTO_GRE
from socket import IPPROTO_HOPOPTS as IPPROTO_HOPOPTS
from socket import IPPROTO_ICMP as IPPROTO_ICMP
from socket import IPPROTO_ICMPV6 as IPPROTO_ICMPV6
from socket import IPPROTO_IDP as IPPROTO_IDP
from socket import IPPROTO_IGMP as IPPROTO_IGMP
from socket import IPPROTO_IP as IPPROTO_IP
from socket import IPPROTO_IPIP as IPPROTO_IPIP
from socket import IPPROTO_IPV6 as IPPROTO_IPV6
from socket import IPPROTO_MPTCP as IPPROTO_MPTCP
from socket import IPPROTO_NONE as IPPROTO_NONE
from socket import IPPROTO_PIM as IPPROTO_PIM
from socket import IPPROTO_PUP as IPPROTO_PUP
from socket import IPPROTO_RAW as IPPROTO_RAW
from socket import IPPROTO_ROUTING as IPPROTO_ROUTING
from socket import IPPROTO_RSVP as IPPROTO_RSVP
from socket import IPPROTO_SCTP as IPPROTO_SCTP
from socket import IPPROTO_TCP as IPPROTO_TCP
from socket import IPPROTO_TP as IPPROTO_TP
from socket import IPPROTO_UDP as IPPROTO_UDP
from socket import IPPROTO_UDPLITE as IPPROTO_UDPLITE
from socket import IPV6_CHECKSUM as IPV6_CHECKSUM
from socket import IPV6_DONTFRAG as IPV6_DONTFRAG
from socket import IPV6_DSTOPTS as IPV6_DSTOPTS
from socket import IPV6_HOPLIMIT as IPV6_HOPLIMIT
from socket import IPV6_HOPOPTS as IPV6_HOPOPTS
from socket import IPV6_JOIN_GROUP as IPV6_JOIN_GROUP
from socket import IPV6_LEAVE_GROUP as IPV6_LEAVE_GROUP
from socket import IPV6_MULTICAST_HOPS as IPV6_MULTICAST_HOPS
from socket import IPV6_MULTICAST_IF as IPV6_MULTICAST_IF
from socket import IPV6_MULTICAST_LOOP as IPV6_MULTICAST_LOOP
from socket import IPV6_NEXTHOP as IPV6_NEXTHOP
from socket import IPV6_PATHMTU as IPV6_PATHMTU
from socket import IPV6_PKTINFO as IPV6_PKTINFO
from socket import IPV6_RECVDSTOPTS as IPV6_RECVDSTOPTS
from socket import IPV6_RECVHOPLIMIT as IPV6_RECVHOPLIMIT
from socket import IPV6_RECVHOPOPTS as IPV6_RECVHOPOPTS
from socket import IPV6_RECVPATHMTU as IPV6_RECVPATHMTU
from socket import IPV6_RECVPKTINFO as IPV6_RECVPKTINFO
from socket import IPV6_RECVRTHDR as IPV6_RECVRTHDR
from socket import IPV6_RECVTCLASS as IPV6_RECVTCLASS
from socket import IPV6_RTHDR as IPV6_RTHDR
from socket import IPV6_RTHDR_TYPE_0 as IPV6_RTHDR_TYPE_0
from socket import IPV6_RTHDRDSTOPTS as IPV6_RTHDRDSTOPTS
from socket import IPV6_TCLASS as IPV6_TCLASS
from socket import IPV6_UNICAST_HOPS as IPV6_UNICAST_HOPS
from socket import IPV6_V6ONLY as IPV6_V6ONLY
from socket import J1939_EE_INFO_NONE as J1939_EE_INFO_NONE
from socket import J1939_EE_INFO_TX_ABORT as J1939_EE_INFO_TX_ABORT
from socket import J1939_FILTER_MAX as J1939_FILTER_MAX
from socket import J1939_IDLE_ADDR as J1939_IDLE_ADDR
from socket import J1939_MAX_UNICAST_ADDR as J1939_MAX_UNICAST_ADDR
from socket import J1939_NLA_BYTES_ACKED as J1939_NLA_BYTES_ACKED
from socket import J1939_NLA_PAD as J1939_NLA_PAD
from socket import J1939_NO_ADDR as J1939_NO_ADDR
from socket import J1939_NO_NAME as J1939_NO_NAME
from socket import J1939_NO_PGN as J1939_NO_PGN
from socket import J1939_PGN_ADDRESS_CLAIMED as J1939_PGN_ADDRESS_CLAIMED
from socket import J1939_PGN_ADDRESS_COMMANDED as J1939_PGN_ADDRESS_COMMANDED
from socket import J1939_PGN_MAX as J1939_PGN_MAX
from socket import J1939_PGN_PDU1_MAX as J1939_PGN_PDU1_MAX
from socket import J1939_PGN_REQUEST as J1939_PGN_REQUEST
from socket import MSG_CMSG_CLOEXEC as MSG_CMSG_CLOEXEC
from socket import MSG_CONFIRM as MSG_CONFIRM
from socket import MSG_CTRUNC as MSG_CTRUNC
from socket import MSG_DONTROUTE as MSG_DONTROUTE
from socket import MSG_DONTWAIT as MSG_DONTWAIT
from socket import MSG_EOR as MSG_EOR
from socket import MSG_ERRQUEUE as MSG_ERRQUEUE
from socket import MSG_FASTOPEN as MSG_FASTOPEN
from socket import MSG_MORE as MSG_MORE
from socket import MSG_NOSIGNAL as MSG_NOSIGNAL
from socket import MSG_OOB as MSG_OOB
from socket import MSG_PEEK as MSG_PEEK
from socket import MSG_TRUNC as MSG_TRUNC
from socket import MSG_WAITALL as MSG_WAITALL
from socket import NETLINK_CRYPTO as NETLINK_CRYPTO
from socket import NETLINK_DNRTMSG as NETLINK_DNRTMSG
from socket import NETLINK_FIREWALL as NETLINK_FIREWALL
from socket import NETLINK_IP6_FW as NETLINK_IP6_FW
from socket import NETLINK_NFLOG as NETLINK_NFLOG
from socket import NETLINK_ROUTE as NETLINK_ROUTE
from socket import NETLINK_USERSOCK as NETLINK_USERSOCK
from socket import NETLINK_XFRM as NETLINK_XFRM
from socket import NI_DGRAM as NI_DGRAM
from socket import NI_MAXHOST as NI_MAXHOST
from socket import NI_MAXSERV as NI_MAXSERV
from socket import NI_NAMEREQD as NI_NAMEREQD
from socket import NI_NOFQDN as NI_NOFQDN
from socket import NI_NUMERICHOST as NI_NUMERICHOST
from socket import NI_NUMERICSERV as NI_NUMERICSERV
from socket import PACKET_BROADCAST as PACKET_BROADCAST
from socket import PACKET_FASTROUTE as PACKET_FASTROUTE
from socket import PACKET_HOST as PACKET_HOST
from socket import PACKET_LOOPBACK as PACKET_LOOPBACK
from socket import PACKET_MULTICAST as PACKET_MULTICAST
from socket import PACKET_OTHERHOST as PACKET_OTHERHOST
from socket import PACKET_OUTGOING as PACKET_OUTGOING
from socket import PF_CAN as PF_CAN
from socket import PF_PACKET as PF_PACKET
from socket import PF_RDS as PF_RDS
from socket import SCM_CREDENTIALS as SCM_CREDENTIALS
from socket import SCM_J1939_DEST_ADDR as SCM_J1939_DEST_ADDR
from socket import SCM_J1939_DEST_NAME as SCM_J1939_DEST_NAME
from socket import SCM_J1939_ERRQUEUE as SCM_J1939_ERRQUEUE
from socket import SCM_J1939_PRIO as SCM_J1939_PRIO
from socket import SCM_RIGHTS as SCM_RIGHTS
from socket import SHUT_RD as SHUT_RD
from socket import SHUT_RDWR as SHUT_RDWR
from socket import SHUT_WR as SHUT_WR
from socket import SO_ACCEPTCONN as SO_ACCEPTCONN
from socket import SO_BINDTODEVICE as SO_BINDTODEVICE
from socket import SO_BROADCAST as SO_BROADCAST
from socket import SO_DEBUG as SO_DEBUG
from socket import SO_DOMAIN as SO_DOMAIN
from socket import SO_DONTROUTE as SO_DONTROUTE
from socket import SO_ERROR as SO_ERROR
from socket import SO_INCOMING_CPU as SO_INCOMING_CPU
from socket import SO_J1939_ERRQUEUE as SO_J1939_ERRQUEUE
from socket import SO_J1939_FILTER as SO_J1939_FILTER
from socket import SO_J1939_PROMISC as SO_J1939_PROMISC
from socket import SO_J1939_SEND_PRIO as SO_J1939_SEND_PRIO
from socket import SO_KEEPALIVE as SO_KEEPALIVE
from socket import SO_LINGER as SO_LINGER
from socket import SO_MARK as SO_MARK
from socket import SO_OOBINLINE as SO_OOBINLINE
from socket import SO_PASSCRED as SO_PASSCRED
from socket import SO_PASSSEC as SO_PASSSEC
from socket import SO_PEERCRED as SO_PEERCRED
from socket import SO_PEERSEC as SO_PEERSEC
from socket import SO_PRIORITY as SO_PRIORITY
from socket import SO_PROTOCOL as SO_PROTOCOL
from socket import SO_RCVBUF as SO_RCVBUF
from socket import SO_RCVLOWAT as SO_RCVLOWAT
from socket import SO_RCVTIMEO as SO_RCVTIMEO
from socket import SO_REUSEADDR as SO_REUSEADDR
from socket import SO_REUSEPORT as SO_REUSEPORT
from socket import SO_SNDBUF as SO_SNDBUF
from socket import SO_SNDLOWAT as SO_SNDLOWAT
from socket import SO_SNDTIMEO as SO_SNDTIMEO
from socket import SO_TYPE as SO_TYPE
from socket import SO_VM_SOCKETS_BUFFER_MAX_SIZE as SO_VM_SOCKETS_BUFFER_MAX_SIZE
from socket import SO_VM_SOCKETS_BUFFER_MIN_SIZE as SO_VM_SOCKETS_BUFFER_MIN_SIZE
from socket import SO_VM_SOCKETS_BUFFER_SIZE as SO_VM_SOCKETS_BUFFER_SIZE
from socket import SOCK_CLOEXEC as SOCK_CLOEXEC
from socket import SOCK_DGRAM as SOCK_DGRAM
from socket import SOCK_NONBLOCK as SOCK_NONBLOCK
from socket import SOCK_RAW as SOCK_RAW
from socket import SOCK_RDM as SOCK_RDM
from socket import SOCK_SEQPACKET as SOCK_SEQPACKET
from socket import SOCK_STREAM as SOCK_STREAM
from socket import SOL_ALG as SOL_ALG
from socket import SOL_CAN_BASE as SOL_CAN_BASE
from socket import SOL_CAN_RAW as SOL_CAN_RAW
from socket import SOL_IP as SOL_IP
from socket import SOL_RDS as SOL_RDS
from socket import SOL_SOCKET as SOL_SOCKET
from socket import SOL_TCP as SOL_TCP
from socket import SOL_TIPC as SOL_TIPC
from socket import SOL_UDP as SOL_UDP
from socket import SOMAXCONN as SOMAXCONN
from socket import TCP_CONGESTION as TCP_CONGESTION
from socket import TCP_CORK as TCP_CORK
from socket import TCP_DEFER_ACCEPT as TCP_DEFER_ACCEPT
from socket import TCP_FASTOPEN as TCP_FASTOPEN
from socket import TCP_INFO as TCP_INFO
from socket import TCP_KEEPCNT as TCP_KEEPCNT
from socket import TCP_KEEPIDLE as TCP_KEEPIDLE
from socket import TCP_KEEPINTVL as TCP_KEEPINTVL
from socket import TCP_LINGER2 as TCP_LINGER2
from socket import TCP_MAXSEG as TCP_MAXSEG
from socket import TCP_NODELAY as TCP_NODELAY
from socket import TCP_NOTSENT_LOWAT as TCP_NOTSENT_LOWAT
from socket import TCP_QUICKACK as TCP_QUICKACK
from socket import TCP_SYNCNT as TCP_SYNCNT
from socket import TCP_USER_TIMEOUT as TCP_USER_TIMEOUT
from socket import TCP_WINDOW_CLAMP as TCP_WINDOW_CLAMP
from socket import TIPC_ADDR_ID as TIPC_ADDR_ID
from socket import TIPC_ADDR_NAME as TIPC_ADDR_NAME
from socket import TIPC_ADDR_NAMESEQ as TIPC_ADDR_NAMESEQ
from socket import TIPC_CFG_SRV as TIPC_CFG_SRV
from socket import TIPC_CLUSTER_SCOPE as TIPC_CLUSTER_SCOPE
from socket import TIPC_CONN_TIMEOUT as TIPC_CONN_TIMEOUT
from socket import TIPC_CRITICAL_IMPORTANCE as TIPC_CRITICAL_IMPORTANCE
from socket import TIPC_DEST_DROPPABLE as TIPC_DEST_DROPPABLE
from socket import TIPC_HIGH_IMPORTANCE as TIPC_HIGH_IMPORTANCE
from socket import TIPC_IMPORTANCE as TIPC_IMPORTANCE
from socket import TIPC_LOW_IMPORTANCE as TIPC_LOW_IMPORTANCE
from socket import TIPC_MEDIUM_IMPORTANCE as TIPC_MEDIUM_IMPORTANCE
from socket import TIPC_NODE_SCOPE as TIPC_NODE_SCOPE
from socket import TIPC_PUBLISHED as TIPC_PUBLISHED
from socket import TIPC_SRC_DROPPABLE as TIPC_SRC_DROPPABLE
from socket import TIPC_SUB_CANCEL as TIPC_SUB_CANCEL
from socket import TIPC_SUB_PORTS as TIPC_SUB_PORTS
from socket import TIPC_SUB_SERVICE as TIPC_SUB_SERVICE
from socket import TIPC_SUBSCR_TIMEOUT as TIPC_SUBSCR_TIMEOUT
from socket import TIPC_TOP_SRV as TIPC_TOP_SRV
from socket import TIPC_WAIT_FOREVER as TIPC_WAIT_FOREVER
from socket import TIPC_WITHDRAWN as TIPC_WITHDRAWN
from socket import TIPC_ZONE_SCOPE as TIPC_ZONE_SCOPE
from socket import UDPLITE_RECV_CSCOV as UDPLITE_RECV_CSCOV
from socket import UDPLITE_SEND_CSCOV as UDPLITE_SEND_CSCOV
from socket import VM_SOCKETS_INVALID_VERSION as VM_SOCKETS_INVALID_VERSION
from socket import VMADDR_CID_ANY as VMADDR_CID_ANY
from socket import VMADDR_CID_HOST as VMADDR_CID_HOST
from socket import VMADDR_PORT_ANY as VMADDR_PORT_ANY
from socket import AddressFamily as AddressFamily
from socket import AF_DECnet as AF_DECnet
from socket import SocketKind as SocketKind
from socket import close as close
from socket import dup as dup
from socket import error as error
from socket import gaierror as gaierror
from socket import getdefaulttimeout as getdefaulttimeout
from socket import gethostname as gethostname
from socket import getprotobyname as getprotobyname
from socket import getservbyname as getservbyname
from socket import getservbyport as getservbyport
from socket import has_dualstack_ipv6 as has_dualstack_ipv6
from socket import has_ipv6 as has_ipv6
from socket import herror as herror
from socket import htonl as htonl
from socket import htons as htons
from socket import if_indextoname as if_indextoname
from socket import if_nameindex as if_nameindex
from socket import if_nametoindex as if_nametoindex
from socket import inet_aton as inet_aton
from socket import inet_ntoa as inet_ntoa
from socket import inet_ntop as inet_ntop
from socket import inet_pton as inet_pton
from socket import ntohl as ntohl
from socket import ntohs as ntohs
from socket import recv_fds as recv_fds
from socket import send_fds as send_fds
from socket import setdefaulttimeout as setdefaulttimeout
from socket import sethostname as sethostname
from socket import timeout as timeout
from typing import Any

__implements__: list[str]
__extensions__: list[str]
__all__ = [
    "AF_ALG",
    "AF_APPLETALK",
    "AF_ASH",
    "AF_ATMPVC",
    "AF_ATMSVC",
    "AF_AX25",
    "AF_BRIDGE",
    "AF_CAN",
    "AF_ECONET",
    "AF_INET",
    "AF_INET6",
    "AF_IPX",
    "AF_IRDA",
    "AF_KEY",
    "AF_LLC",
    "AF_NETBEUI",
    "AF_NETLINK",
    "AF_NETROM",
    "AF_PACKET",
    "AF_PPPOX",
    "AF_QIPCRTR",
    "AF_RDS",
    "AF_ROSE",
    "AF_ROUTE",
    "AF_SECURITY",
    "AF_SNA",
    "AF_TIPC",
    "AF_UNIX",
    "AF_UNSPEC",
    "AF_VSOCK",
    "AF_WANPIPE",
    "AF_X25",
    "AI_ADDRCONFIG",
    "AI_ALL",
    "AI_CANONNAME",
    "AI_NUMERICHOST",
    "AI_NUMERICSERV",
    "AI_PASSIVE",
    "AI_V4MAPPED",
    "ALG_OP_DECRYPT",
    "ALG_OP_ENCRYPT",
    "ALG_OP_SIGN",
    "ALG_OP_VERIFY",
    "ALG_SET_AEAD_ASSOCLEN",
    "ALG_SET_AEAD_AUTHSIZE",
    "ALG_SET_IV",
    "ALG_SET_KEY",
    "ALG_SET_OP",
    "ALG_SET_PUBKEY",
    "CAN_BCM",
    "CAN_BCM_CAN_FD_FRAME",
    "CAN_BCM_RX_ANNOUNCE_RESUME",
    "CAN_BCM_RX_CHANGED",
    "CAN_BCM_RX_CHECK_DLC",
    "CAN_BCM_RX_DELETE",
    "CAN_BCM_RX_FILTER_ID",
    "CAN_BCM_RX_NO_AUTOTIMER",
    "CAN_BCM_RX_READ",
    "CAN_BCM_RX_RTR_FRAME",
    "CAN_BCM_RX_SETUP",
    "CAN_BCM_RX_STATUS",
    "CAN_BCM_RX_TIMEOUT",
    "CAN_BCM_SETTIMER",
    "CAN_BCM_STARTTIMER",
    "CAN_BCM_TX_ANNOUNCE",
    "CAN_BCM_TX_COUNTEVT",
    "CAN_BCM_TX_CP_CAN_ID",
    "CAN_BCM_TX_DELETE",
    "CAN_BCM_TX_EXPIRED",
    "CAN_BCM_TX_READ",
    "CAN_BCM_TX_RESET_MULTI_IDX",
    "CAN_BCM_TX_SEND",
    "CAN_BCM_TX_SETUP",
    "CAN_BCM_TX_STATUS",
    "CAN_EFF_FLAG",
    "CAN_EFF_MASK",
    "CAN_ERR_FLAG",
    "CAN_ERR_MASK",
    "CAN_ISOTP",
    "CAN_J1939",
    "CAN_RAW",
    "CAN_RAW_FD_FRAMES",
    "CAN_RAW_FILTER",
    "CAN_RAW_JOIN_FILTERS",
    "CAN_RAW_LOOPBACK",
    "CAN_RAW_RECV_OWN_MSGS",
    "CAN_RTR_FLAG",
    "CAN_SFF_MASK",
    "CAPI",
    "CMSG_LEN",
    "CMSG_SPACE",
    "EAI_ADDRFAMILY",
    "EAI_AGAIN",
    "EAI_BADFLAGS",
    "EAI_FAIL",
    "EAI_FAMILY",
    "EAI_MEMORY",
    "EAI_NODATA",
    "EAI_NONAME",
    "EAI_OVERFLOW",
    "EAI_SERVICE",
    "EAI_SOCKTYPE",
    "EAI_SYSTEM",
    "INADDR_ALLHOSTS_GROUP",
    "INADDR_ANY",
    "INADDR_BROADCAST",
    "INADDR_LOOPBACK",
    "INADDR_MAX_LOCAL_GROUP",
    "INADDR_NONE",
    "INADDR_UNSPEC_GROUP",
    "IOCTL_VM_SOCKETS_GET_LOCAL_CID",
    "IPPORT_RESERVED",
    "IPPORT_USERRESERVED",
    "IPPROTO_AH",
    "IPPROTO_DSTOPTS",
    "IPPROTO_EGP",
    "IPPROTO_ESP",
    "IPPROTO_FRAGMENT",
    "IPPROTO_GRE",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
    "IPPROTO_IDP",
    "IPPROTO_IGMP",
    "IPPROTO_IP",
    "IPPROTO_IPIP",
    "IPPROTO_IPV6",
    "IPPROTO_MPTCP",
    "IPPROTO_NONE",
    "IPPROTO_PIM",
    "IPPROTO_PUP",
    "IPPROTO_RAW",
    "IPPROTO_ROUTING",
    "IPPROTO_RSVP",
    "IPPROTO_SCTP",
    "IPPROTO_TCP",
    "IPPROTO_TP",
    "IPPROTO_UDP",
    "IPPROTO_UDPLITE",
    "IPV6_CHECKSUM",
    "IPV6_DONTFRAG",
    "IPV6_DSTOPTS",
    "IPV6_HOPLIMIT",
    "IPV6_HOPOPTS",
    "IPV6_JOIN_GROUP",
    "IPV6_LEAVE_GROUP",
    "IPV6_MULTICAST_HOPS",
    "IPV6_MULTICAST_IF",
    "IPV6_MULTICAST_LOOP",
    "IPV6_NEXTHOP",
    "IPV6_PATHMTU",
    "IPV6_PKTINFO",
    "IPV6_RECVDSTOPTS",
    "IPV6_RECVHOPLIMIT",
    "IPV6_RECVHOPOPTS",
    "IPV6_RECVPATHMTU",
    "IPV6_RECVPKTINFO",
    "IPV6_RECVRTHDR",
    "IPV6_RECVTCLASS",
    "IPV6_RTHDR",
    "IPV6_RTHDRDSTOPTS",
    "IPV6_RTHDR_TYPE_0",
    "IPV6_TCLASS",
    "IPV6_UNICAST_HOPS",
    "IPV6_V6ONLY",
    "IP_ADD_MEMBERSHIP",
    "IP_BIND_ADDRESS_NO_PORT",
    "IP_DEFAULT_MULTICAST_LOOP",
    "IP_DEFAULT_MULTICAST_TTL",
    "IP_DROP_MEMBERSHIP",
    "IP_HDRINCL",
    "IP_MAX_MEMBERSHIPS",
    "IP_MULTICAST_IF",
    "IP_MULTICAST_LOOP",
    "IP_MULTICAST_TTL",
    "IP_OPTIONS",
    "IP_RECVOPTS",
    "IP_RECVRETOPTS",
    "IP_RECVTOS",
    "IP_RETOPTS",
    "IP_TOS",
    "IP_TRANSPARENT",
    "IP_TTL",
    "J1939_EE_INFO_NONE",
    "J1939_EE_INFO_TX_ABORT",
    "J1939_FILTER_MAX",
    "J1939_IDLE_ADDR",
    "J1939_MAX_UNICAST_ADDR",
    "J1939_NLA_BYTES_ACKED",
    "J1939_NLA_PAD",
    "J1939_NO_ADDR",
    "J1939_NO_NAME",
    "J1939_NO_PGN",
    "J1939_PGN_ADDRESS_CLAIMED",
    "J1939_PGN_ADDRESS_COMMANDED",
    "J1939_PGN_MAX",
    "J1939_PGN_PDU1_MAX",
    "J1939_PGN_REQUEST",
    "MSG_CMSG_CLOEXEC",
    "MSG_CONFIRM",
    "MSG_CTRUNC",
    "MSG_DONTROUTE",
    "MSG_DONTWAIT",
    "MSG_EOR",
    "MSG_ERRQUEUE",
    "MSG_FASTOPEN",
    "MSG_MORE",
    "MSG_NOSIGNAL",
    "MSG_OOB",
    "MSG_PEEK",
    "MSG_TRUNC",
    "MSG_WAITALL",
    "NETLINK_CRYPTO",
    "NETLINK_DNRTMSG",
    "NETLINK_FIREWALL",
    "NETLINK_IP6_FW",
    "NETLINK_NFLOG",
    "NETLINK_ROUTE",
    "NETLINK_USERSOCK",
    "NETLINK_XFRM",
    "NI_DGRAM",
    "NI_MAXHOST",
    "NI_MAXSERV",
    "NI_NAMEREQD",
    "NI_NOFQDN",
    "NI_NUMERICHOST",
    "NI_NUMERICSERV",
    "PACKET_BROADCAST",
    "PACKET_FASTROUTE",
    "PACKET_HOST",
    "PACKET_LOOPBACK",
    "PACKET_MULTICAST",
    "PACKET_OTHERHOST",
    "PACKET_OUTGOING",
    "PF_CAN",
    "PF_PACKET",
    "PF_RDS",
    "SCM_CREDENTIALS",
    "SCM_J1939_DEST_ADDR",
    "SCM_J1939_DEST_NAME",
    "SCM_J1939_ERRQUEUE",
    "SCM_J1939_PRIO",
    "SCM_RIGHTS",
    "SHUT_RD",
    "SHUT_RDWR",
    "SHUT_WR",
    "SOCK_CLOEXEC",
    "SOCK_DGRAM",
    "SOCK_NONBLOCK",
    "SOCK_RAW",
    "SOCK_RDM",
    "SOCK_SEQPACKET",
    "SOCK_STREAM",
    "SOL_ALG",
    "SOL_CAN_BASE",
    "SOL_CAN_RAW",
    "SOL_IP",
    "SOL_RDS",
    "SOL_SOCKET",
    "SOL_TCP",
    "SOL_TIPC",
    "SOL_UDP",
    "SOMAXCONN",
    "SO_ACCEPTCONN",
    "SO_BINDTODEVICE",
    "SO_BROADCAST",
    "SO_DEBUG",
    "SO_DOMAIN",
    "SO_DONTROUTE",
    "SO_ERROR",
    "SO_INCOMING_CPU",
    "SO_J1939_ERRQUEUE",
    "SO_J1939_FILTER",
    "SO_J1939_PROMISC",
    "SO_J1939_SEND_PRIO",
    "SO_KEEPALIVE",
    "SO_LINGER",
    "SO_MARK",
    "SO_OOBINLINE",
    "SO_PASSCRED",
    "SO_PASSSEC",
    "SO_PEERCRED",
    "SO_PEERSEC",
    "SO_PRIORITY",
    "SO_PROTOCOL",
    "SO_RCVBUF",
    "SO_RCVLOWAT",
    "SO_RCVTIMEO",
    "SO_REUSEADDR",
    "SO_REUSEPORT",
    "SO_SNDBUF",
    "SO_SNDLOWAT",
    "SO_SNDTIMEO",
    "SO_TYPE",
    "SO_VM_SOCKETS_BUFFER_MAX_SIZE",
    "SO_VM_SOCKETS_BUFFER_MIN_SIZE",
    "SO_VM_SOCKETS_BUFFER_SIZE",
    "TCP_CONGESTION",
    "TCP_CORK",
    "TCP_DEFER_ACCEPT",
    "TCP_FASTOPEN",
    "TCP_INFO",
    "TCP_KEEPCNT",
    "TCP_KEEPIDLE",
    "TCP_KEEPINTVL",
    "TCP_LINGER2",
    "TCP_MAXSEG",
    "TCP_NODELAY",
    "TCP_NOTSENT_LOWAT",
    "TCP_QUICKACK",
    "TCP_SYNCNT",
    "TCP_USER_TIMEOUT",
    "TCP_WINDOW_CLAMP",
    "TIPC_ADDR_ID",
    "TIPC_ADDR_NAME",
    "TIPC_ADDR_NAMESEQ",
    "TIPC_CFG_SRV",
    "TIPC_CLUSTER_SCOPE",
    "TIPC_CONN_TIMEOUT",
    "TIPC_CRITICAL_IMPORTANCE",
    "TIPC_DEST_DROPPABLE",
    "TIPC_HIGH_IMPORTANCE",
    "TIPC_IMPORTANCE",
    "TIPC_LOW_IMPORTANCE",
    "TIPC_MEDIUM_IMPORTANCE",
    "TIPC_NODE_SCOPE",
    "TIPC_PUBLISHED",
    "TIPC_SRC_DROPPABLE",
    "TIPC_SUBSCR_TIMEOUT",
    "TIPC_SUB_CANCEL",
    "TIPC_SUB_PORTS",
    "TIPC_SUB_SERVICE",
    "TIPC_TOP_SRV",
    "TIPC_WAIT_FOREVER",
    "TIPC_WITHDRAWN",
    "TIPC_ZONE_SCOPE",
    "UDPLITE_RECV_CSCOV",
    "UDPLITE_SEND_CSCOV",
    "VMADDR_CID_ANY",
    "VMADDR_CID_HOST",
    "VMADDR_PORT_ANY",
    "VM_SOCKETS_INVALID_VERSION",
    "AF_DECnet",
    "AddressFamily",
    "ConcurrentObjectUseError",
    "SocketKind",
    "SocketType",
    "cancel_wait",
    "cancel_wait_ex",
    "close",
    "create_connection",
    "create_server",
    "dup",
    "error",
    "fromfd",
    "gaierror",
    "getaddrinfo",
    "getdefaulttimeout",
    "getfqdn",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostname",
    "getnameinfo",
    "getprotobyname",
    "getservbyname",
    "getservbyport",
    "has_dualstack_ipv6",
    "has_ipv6",
    "herror",
    "htonl",
    "htons",
    "if_indextoname",
    "if_nameindex",
    "if_nametoindex",
    "inet_aton",
    "inet_ntoa",
    "inet_ntop",
    "inet_pton",
    "ntohl",
    "ntohs",
    "recv_fds",
    "send_fds",
    "setdefaulttimeout",
    "sethostname",
    "socket",
    "socketpair",
    "timeout",
    "wait_read",
    "wait_readwrite",
    "wait_write",
]

from ..exceptions import ConcurrentObjectUseError as ConcurrentObjectUseError

class cancel_wait_ex(OSError):
    def __init__(self) -> None: ...

class socket(_stdsocket.socket):
    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None: ...
    @property
    def timeout(self) -> float | None: ...  # type: ignore[override]
    def settimeout(self, value: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    def setblocking(self, flag: bool) -> None: ...
    def getblocking(self) -> bool: ...
    def detach(self) -> int: ...
    def shutdown(self, how: int) -> None: ...
    def accept(self) -> tuple[socket, Any]: ...
    def connect(self, address: Any) -> None: ...
    def connect_ex(self, address: Any) -> int: ...
    def recv(self, bufsize: int, flags: int = 0) -> bytes: ...
    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int: ...
    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]: ...
    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]: ...
    def recvmsg(self, *args: Any) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]: ...
    def recvmsg_into(
        self, buffers: Any, *args: Any
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Any]: ...
    def send(self, data: Any, flags: int = 0) -> int: ...
    def sendall(self, data: Any, flags: int = 0) -> None: ...
    def sendto(self, data: Any, *args: Any) -> int: ...  # type: ignore[override]
    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int: ...
    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int: ...

SocketType = socket

def create_connection(
    address: tuple[str | None, int],
    timeout: float | None = ...,
    source_address: tuple[str, int] | None = None,
    *,
    all_errors: bool = False,
) -> socket: ...
def create_server(
    address: Any,
    *,
    family: int = ...,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> socket: ...
def socketpair(family: int | None = None, type: int = ..., proto: int = 0) -> tuple[socket, socket]: ...
def fromfd(fd: Any, family: int, type: int, proto: int = 0) -> socket: ...
def getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[Any, Any, int, str, Any]]: ...
def gethostbyname(hostname: str) -> str: ...
def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]: ...
def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]: ...
def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]: ...
def getfqdn(name: str = "") -> str: ...
def wait_read(fileno: Any, timeout: float | None = None, timeout_exc: Any = ...) -> None: ...
def wait_write(
    fileno: Any, timeout: float | None = None, timeout_exc: Any = ..., event: Any = ...
) -> None: ...
def wait_readwrite(
    fileno: Any, timeout: float | None = None, timeout_exc: Any = ..., event: Any = ...
) -> None: ...
def cancel_wait(watcher: Any, error: type[BaseException] | BaseException = ...) -> None: ...
