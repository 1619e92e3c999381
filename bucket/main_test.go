package bucket_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Shippers, buckets and the S3 server helper must not leave goroutines
// behind; the service owning them relies on Close and Run returning clean.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
