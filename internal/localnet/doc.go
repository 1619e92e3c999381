// Package localnet holds what drivers of real processes on loopback need,
// the benchmark drivers and the end-to-end tests alike: free ports,
// readiness, profiles.
//
// It imports nothing of Atoll.
package localnet
