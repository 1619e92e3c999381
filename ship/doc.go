// Package ship owns Atoll's object storage: the Bucket interface with its
// filesystem and S3 implementations, the block meta.json format, and the
// Shipper that moves finished TSDB blocks into the bucket.
//
// # Buckets
//
// Every component reads and writes object storage through Bucket, a small
// interface in the spirit of Thanos objstore; no minio-go type crosses it.
// Errors for missing objects match ErrObjectNotFound (test with IsNotFound);
// other errors, including an unreachable bucket, never do.
//
//   - NewBucket builds a bucket from a BucketConfig and records
//     atoll_bucket_* metrics. ParseBucketConfig reads the Thanos-style YAML
//     ("type: FILESYSTEM|S3" plus "config: {...}"), rejecting unknown fields.
//   - The filesystem bucket (FilesystemBucketConfig, or NewFilesystemBucket
//     without metrics) keeps objects as files. It is the default for a single
//     node and the bucket of most tests. Uploads are staged and renamed, so
//     readers never see partial objects; names that could leave the root are
//     rejected, by every implementation alike.
//   - The S3 bucket talks to AWS S3 or any compatible store via minio-go,
//     with static, environment, credentials-file or IAM-role credentials, and
//     multipart uploads of PartSize parts.
//
// Package shiptest runs the same conformance suite against any Bucket and
// starts a real S3 server for tests.
//
// # Block layout and meta.json
//
// A block lives under its ULID: "<ulid>/chunks/000001", "<ulid>/index",
// "<ulid>/tombstones" and "<ulid>/meta.json". Meta is the Prometheus block
// meta plus the Thanos-compatible "thanos" section (external labels,
// downsampling resolution, source, file list), so Thanos tools read Atoll
// buckets and Atoll reads Thanos and plain Prometheus blocks. A block exists
// for readers only once its meta.json does; writers upload it last.
//
// # Shipping
//
// A Shipper watches one TSDB directory (one tenant). Sync uploads each
// finished level-1 block exactly once, data files first and meta.json last,
// and records shipped blocks in "atoll-shipper.json" in that directory; if
// the record is lost, blocks whose meta.json is already in the bucket are not
// uploaded again. A bucket outage makes Sync fail (the caller retries; Run
// does so with backoff) and loses nothing. The TSDB owner deletes a local
// block only once Shipped or IsShipped reports it.
package ship
