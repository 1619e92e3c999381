// Package e2eproc runs the real programs that tests drive (atoll,
// Prometheus, versitygw): it finds them, starts them, captures their
// output, waits for them to be ready on loopback ports picked at run time,
// and stops them when the test ends, showing the output of a failed test.
//
// Only tests import it; benchmark drivers run their processes with
// internal/localnet, which this package uses too.
package e2eproc
