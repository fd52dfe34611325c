# -*- test-case-name: dockerpy.test.test_runtime_seccomp -*-
"""Docker's default seccomp profile, as the OCI spec's ``linux.seccomp``.

Owned here: which system calls a container may make by default, which more
each capability opens (``--cap-add SYS_ADMIN`` opens ``mount``, ``unshare``
...), the per-architecture rules, and ``--security-opt seccomp=...``
(``unconfined``, or a profile in Docker's JSON format).  What it produces
matches, rule for rule, the section Docker 20.10 writes for the same
capabilities on amd64 (``dockerpy/test/data/seccomp-docker20-*.json``,
recorded from Docker's own bundles).

Everything not allowed fails with EPERM, as with Docker; ``clone3``
fails with ENOSYS without SYS_ADMIN, so that libcs fall back to ``clone``,
whose namespace flags are refused.
"""

from __future__ import annotations

import json
import platform
from typing import Any, Iterable, Optional

from dockerpy import errors

#: Allowed for every container (the names a kernel lacks are ignored).
ALLOWED: tuple[str, ...] = (
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
    "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
    "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
    "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid",
    "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd",
    "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect",
    "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe",
    "pipe2", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
    "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socket", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
    "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
)

#: Opened by each capability the container has (Docker's ``includes.caps``).
BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
        "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
        "sethostname", "setns", "syslog", "umount", "umount2", "unshare"),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                       "process_vm_writev"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy"),
    "CAP_SYSLOG": ("syslog",),
}

#: ``personality(2)`` domains a container may ask for: Linux, PER_LINUX32,
#: UNAME26, UNAME26|PER_LINUX32, and the query (0xffffffff).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP.
CLONE_NAMESPACE_FLAGS = 0x7E020000

_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
}
_ARCH_ONLY = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
                "breakpoint", "cacheflush", "set_tls"),
}

_ALLOW = "SCMP_ACT_ALLOW"
_ENOSYS = 38


def _allow(names: Iterable[str], args: Optional[list] = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": list(names), "action": _ALLOW}
    if args is not None:
        rule["args"] = args
    return rule


def default_profile(capabilities: Iterable[str], arch: str = "") -> dict[str, Any]:
    """Docker's default profile for a container with ``capabilities``
    (``CAP_*`` names, after ``--cap-add``/``--cap-drop``)."""
    caps = set(capabilities)
    arch = arch or platform.machine()
    rules = [_allow(ALLOWED), _allow(["ptrace"])]  # ptrace: any kernel >= 4.8
    rules += [_allow(["personality"], [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}])
              for p in PERSONALITIES]
    rules += [_allow([name]) for name in _ARCH_ONLY.get(arch, ())]
    if "CAP_SYS_ADMIN" not in caps:
        rules.append(_allow(["clone"], [{"index": 0, "value": CLONE_NAMESPACE_FLAGS,
                                          "op": "SCMP_CMP_MASKED_EQ"}]))
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS})
    for cap, names in BY_CAPABILITY.items():
        if cap in caps:
            rules.append(_allow(names))
    return {"defaultAction": "SCMP_ACT_ERRNO",
             "architectures": list(_ARCHES.get(arch, [])),
             "syscalls": rules}


def profile_for(security_opt: Iterable[str], capabilities: Iterable[str],
                privileged: bool = False) -> Optional[dict[str, Any]]:
    """The ``linux.seccomp`` section for a container, or None for none
    (``--privileged``, ``--security-opt seccomp=unconfined``).

    ``seccomp=<profile>`` is what the docker CLI sends for ``--security-opt
    seccomp=FILE``: the file's JSON, in Docker's format.
    """
    custom = None
    for opt in security_opt or ():
        opt = str(opt)
        if not opt.startswith(("seccomp=", "seccomp:")):
            continue
        value = opt[len("seccomp="):]
        if value == "unconfined":
            return None
        custom = value
    if custom is None:
        return None if privileged else default_profile(capabilities)
    return from_docker_profile(custom, capabilities)


def from_docker_profile(text: str, capabilities: Iterable[str], arch: str = "") -> dict:
    """A profile in Docker's JSON format (``defaultAction``, ``architectures``
    or ``archMap``, ``syscalls`` with ``names``, ``action``, ``args``,
    ``errnoRet``, ``includes``/``excludes`` by ``caps`` and ``arches``) as the
    OCI section.

    :raises errors.SystemError_: not such a profile (Docker answers the
        start with a 500 too; the create went through).
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise errors.SystemError_(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("defaultAction"), str):
        raise errors.SystemError_("decoding seccomp profile failed: no defaultAction")
    caps, arch = set(capabilities), arch or platform.machine()
    arches = doc.get("architectures")
    if not arches:
        ours = _ARCHES.get(arch, [""])[0]
        for entry in doc.get("archMap") or []:
            if isinstance(entry, dict) and entry.get("architecture") == ours:
                arches = [ours] + list(entry.get("subArchitectures") or [])
    out: dict[str, Any] = {"defaultAction": doc["defaultAction"],
                           "architectures": list(arches or [])}
    if isinstance(doc.get("defaultErrnoRet"), int):
        out["defaultErrnoRet"] = doc["defaultErrnoRet"]
    rules = []
    for rule in doc.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise errors.SystemError_("decoding seccomp profile failed: bad syscalls entry")
        if not _applies(rule, caps, arch):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        new = {"names": list(names), "action": rule.get("action") or _ALLOW}
        for key in ("args", "errnoRet"):
            if rule.get(key) is not None:
                new[key] = rule[key]
        rules.append(new)
    out["syscalls"] = rules
    return out


def _applies(rule: dict, caps: set, arch: str) -> bool:
    arch_name = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch_name not in inc["arches"]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    if exc.get("arches") and arch_name in exc["arches"]:
        return False
    return True
