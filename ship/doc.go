// Package ship moves finished TSDB blocks into object storage and reads them
// back.
//
// Bucket is the small object-storage interface every other package consumes;
// NewBucket builds a filesystem or S3 (minio-go) implementation from the
// Thanos-style YAML configuration. Shipper uploads each finished block exactly
// once, meta.json last, and Meta is the block meta.json with its
// Thanos-compatible section.
package ship
