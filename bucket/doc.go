// Package bucket is Atoll's object storage: the Bucket interface every
// component reads and writes through, its filesystem and S3
// implementations, their YAML configuration and their metrics. It knows
// objects and names, nothing about blocks (package block gives the objects
// meaning) and imports nothing of Atoll but internal/atomicfile.
//
// Bucket is a small interface in the spirit of Thanos objstore; no
// minio-go type crosses it. IsNotFound reports the errors for missing
// objects; other errors, including an unreachable bucket, never match it.
//
//   - New builds a bucket from a Config and records atoll_bucket_* metrics.
//     ParseConfig reads the Thanos-style YAML ("type: FILESYSTEM|S3" plus
//     "config: {...}"), rejecting unknown fields.
//   - The filesystem bucket (ConfigForDir, or NewFilesystem without
//     metrics) keeps objects as files. It is the default for a single node
//     and the bucket of most tests. Uploads are staged and renamed, so
//     readers never see partial objects; names that could leave the root
//     are rejected, by every implementation alike.
//   - The S3 bucket talks to AWS S3 or any compatible store via minio-go,
//     with static, environment, credentials-file or IAM-role credentials,
//     and multipart uploads of PartSize parts.
//
// Package buckettest runs one conformance suite against any Bucket and
// starts a real S3 server for tests.
package bucket
