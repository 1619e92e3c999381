// Package buckettest holds test helpers for code that uses package bucket:
// a conformance suite for bucket.Bucket implementations (Conformance) and a
// real S3-compatible server for tests that need S3 over the wire
// (StartS3Server, which runs versitygw).
//
// Only tests import this package.
package buckettest
