// Package writepb is the generated gRPC code of the forwarding protocol
// between receivers (write.proto; `make proto` regenerates it). Only
// ingest's forward.go, the transport, touches it.
package writepb
