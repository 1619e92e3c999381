// Package shiptest holds test helpers for code that uses package ship: a
// conformance suite for ship.Bucket implementations (BucketConformance) and
// a real S3-compatible server for tests that need S3 over the wire
// (StartS3Server, which runs versitygw).
//
// Only tests import this package.
package shiptest
