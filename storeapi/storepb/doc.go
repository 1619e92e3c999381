// Package storepb is the generated gRPC code of the Store API (store.proto;
// `make proto` regenerates it). Only storeapi's grpc.go, the transport,
// touches it: no storepb type crosses storeapi.Store.
package storepb
