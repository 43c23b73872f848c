package dovecottest

import "syscall"

// syscall0 probes whether a process still exists.
var syscall0 = syscall.Signal(0)
