// Command bucketinit creates the S3 bucket an Atoll objstore file names, so
// a fresh compose stack (or any new S3 server) is usable without an S3 CLI.
// It waits for the server to answer, creates the bucket, and exits 0; a
// bucket that already exists is success, so it is safe to run on every start.
//
// It reads the same file the Atoll components are given
// (--objstore.config-file, `type: S3`), parsed by the same code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/atoll-metrics/atoll/bucket"
)

func main() {
	configFile := flag.String("objstore.config-file", "", "Atoll bucket YAML (type: S3) naming the bucket to create.")
	timeout := flag.Duration("timeout", 2*time.Minute, "How long to keep trying while the S3 server does not answer.")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*configFile, *timeout, logger); err != nil {
		logger.Error("cannot create the bucket", "err", err)
		os.Exit(1)
	}
}

func run(path string, timeout time.Duration, logger *slog.Logger) error {
	if path == "" {
		return errors.New("--objstore.config-file is required")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, err := bucket.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Type != bucket.TypeS3 {
		return fmt.Errorf("%s: bucket type %s has no bucket to create; want S3", path, cfg.Type)
	}
	c := cfg.S3
	lookup := minio.BucketLookupAuto
	switch c.BucketLookupType {
	case "path":
		lookup = minio.BucketLookupPath
	case "virtual-hosted":
		lookup = minio.BucketLookupDNS
	}
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKey, string(c.SecretKey), string(c.SessionToken)),
		Secure:       !c.Insecure,
		Region:       c.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := makeBucket(ctx, client, c.Bucket, c.Region)
		if err == nil {
			logger.Info("bucket ready", "bucket", c.Bucket, "endpoint", c.Endpoint)
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			logger.Warn("S3 server not ready yet; retrying", "endpoint", c.Endpoint, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bucket %q at %s: %w", c.Bucket, c.Endpoint, err)
		case <-time.After(time.Second):
		}
	}
}

// makeBucket creates the bucket unless it exists already.
func makeBucket(ctx context.Context, client *minio.Client, bucket, region string) error {
	attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	exists, err := client.BucketExists(attemptCtx, bucket)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	err = client.MakeBucket(attemptCtx, bucket, minio.MakeBucketOptions{Region: region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil
	}
	return err
}
