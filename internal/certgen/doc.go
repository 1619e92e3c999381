// Package certgen makes the certificates tests and benchmarks need at run
// time (crypto/x509), so no key is ever committed: a CA, a server
// certificate for loopback names and a client certificate, as PEM files.
//
// It imports nothing of Atoll, and only tests and benchmarks import it.
package certgen
