package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll-metrics/atoll/bucket"
)

// Conformance checks that a bucket.Bucket implementation behaves as the
// interface documents. newBucket must return an empty bucket for each
// subtest; the suite does not close it.
func Conformance(t *testing.T, newBucket func(t *testing.T) bucket.Bucket) {
	t.Run("upload and read back", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		if bkt.Name() == "" {
			t.Error("Name() is empty")
		}
		start := time.Now()
		mustUpload(t, bkt, "block/chunks/000001", "hello, bucket")
		if got := mustGet(t, bkt, "block/chunks/000001"); got != "hello, bucket" {
			t.Errorf("Get = %q, want %q", got, "hello, bucket")
		}
		ok, err := bkt.Exists(ctx, "block/chunks/000001")
		if err != nil || !ok {
			t.Errorf("Exists = %v, %v; want true, nil", ok, err)
		}
		attrs, err := bkt.Attributes(ctx, "block/chunks/000001")
		if err != nil {
			t.Fatalf("Attributes: %v", err)
		}
		if attrs.Size != int64(len("hello, bucket")) {
			t.Errorf("Attributes.Size = %d, want %d", attrs.Size, len("hello, bucket"))
		}
		// S3 keeps whole seconds; allow for that and for clock skew.
		if d := attrs.LastModified.Sub(start); d < -time.Minute || d > time.Minute {
			t.Errorf("Attributes.LastModified = %v, want about %v", attrs.LastModified, start)
		}
	})

	t.Run("upload replaces", func(t *testing.T) {
		bkt := newBucket(t)
		mustUpload(t, bkt, "obj", "first version, longer")
		mustUpload(t, bkt, "obj", "second")
		if got := mustGet(t, bkt, "obj"); got != "second" {
			t.Errorf("Get = %q, want %q", got, "second")
		}
	})

	t.Run("upload of unknown size and empty object", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		// A plain io.Reader, so the size cannot be discovered by type.
		r := io.MultiReader(strings.NewReader("unknown "), strings.NewReader("size"))
		if err := bkt.Upload(ctx, "unknown", r, -1); err != nil {
			t.Fatalf("Upload(size -1): %v", err)
		}
		if got := mustGet(t, bkt, "unknown"); got != "unknown size" {
			t.Errorf("Get = %q, want %q", got, "unknown size")
		}
		mustUpload(t, bkt, "empty", "")
		if got := mustGet(t, bkt, "empty"); got != "" {
			t.Errorf("Get(empty) = %q", got)
		}
		attrs, err := bkt.Attributes(ctx, "empty")
		if err != nil || attrs.Size != 0 {
			t.Errorf("Attributes(empty) = %+v, %v; want size 0", attrs, err)
		}
	})

	t.Run("names with spaces and symbols", func(t *testing.T) {
		bkt := newBucket(t)
		for _, name := range []string{"dir with space/a+b=c", "tenant-ä/x%2Fy", "a.b/.hidden"} {
			mustUpload(t, bkt, name, name)
			if got := mustGet(t, bkt, name); got != name {
				t.Errorf("Get(%q) = %q", name, got)
			}
		}
	})

	t.Run("missing object", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		mustUpload(t, bkt, "dir/present", "x")
		for _, name := range []string{"absent", "dir/absent", "dir", "dir/present/below"} {
			if _, err := bkt.Get(ctx, name); !bucket.IsNotFound(err) {
				t.Errorf("Get(%q) error = %v, want not found", name, err)
			}
			if _, err := bkt.GetRange(ctx, name, 0, 1); !bucket.IsNotFound(err) {
				t.Errorf("GetRange(%q) error = %v, want not found", name, err)
			}
			if _, err := bkt.Attributes(ctx, name); !bucket.IsNotFound(err) {
				t.Errorf("Attributes(%q) error = %v, want not found", name, err)
			}
			if ok, err := bkt.Exists(ctx, name); ok || err != nil {
				t.Errorf("Exists(%q) = %v, %v; want false, nil", name, ok, err)
			}
		}
	})

	t.Run("range reads", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		const content = "0123456789abcdef"
		mustUpload(t, bkt, "ranged", content)
		for _, tc := range []struct {
			off, length int64
			want        string
		}{
			{0, 4, "0123"},
			{5, 3, "567"},
			{10, -1, "abcdef"},
			{0, -1, content},
			{14, 10, "ef"},
			{15, 1, "f"},
			{3, 0, ""},
			{16, 4, ""},
		} {
			t.Run(fmt.Sprintf("off=%d,length=%d", tc.off, tc.length), func(t *testing.T) {
				rc, err := bkt.GetRange(ctx, "ranged", tc.off, tc.length)
				if err != nil {
					t.Fatalf("GetRange: %v", err)
				}
				got := readAll(t, rc)
				if got != tc.want {
					t.Errorf("GetRange = %q, want %q", got, tc.want)
				}
			})
		}
		for _, bad := range [][2]int64{{-1, 2}, {0, -2}} {
			if rc, err := bkt.GetRange(ctx, "ranged", bad[0], bad[1]); err == nil {
				_ = rc.Close()
				t.Errorf("GetRange(off=%d, length=%d) succeeded, want error", bad[0], bad[1])
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		mustUpload(t, bkt, "block/index", "i")
		mustUpload(t, bkt, "keep", "k")
		if err := bkt.Delete(ctx, "block/index"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if ok, _ := bkt.Exists(ctx, "block/index"); ok {
			t.Error("object still exists after Delete")
		}
		if err := bkt.Delete(ctx, "block/index"); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		if err := bkt.Delete(ctx, "never/existed"); err != nil {
			t.Errorf("Delete(missing): %v, want nil", err)
		}
		// The emptied prefix vanishes from listings, as in object stores.
		if got := iterNames(t, bkt, "", false); !slices.Equal(got, []string{"keep"}) {
			t.Errorf("Iter after Delete = %q, want [keep]", got)
		}
	})

	t.Run("iter", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		for _, name := range []string{"a/1", "a/2", "a/b/3", "a.txt", "c", "d/e/f/4"} {
			mustUpload(t, bkt, name, name)
		}
		for _, tc := range []struct {
			dir       string
			recursive bool
			want      []string
		}{
			{"", false, []string{"a.txt", "a/", "c", "d/"}},
			{"", true, []string{"a.txt", "a/1", "a/2", "a/b/3", "c", "d/e/f/4"}},
			{"a", false, []string{"a/1", "a/2", "a/b/"}},
			{"a/", false, []string{"a/1", "a/2", "a/b/"}},
			{"a", true, []string{"a/1", "a/2", "a/b/3"}},
			{"d", false, []string{"d/e/"}},
			{"d/e", true, []string{"d/e/f/4"}},
			{"missing", false, nil},
			{"missing", true, nil},
			{"c", false, nil},
		} {
			t.Run(fmt.Sprintf("dir=%q,recursive=%v", tc.dir, tc.recursive), func(t *testing.T) {
				if got := iterNames(t, bkt, tc.dir, tc.recursive); !slices.Equal(got, tc.want) {
					t.Errorf("Iter = %q, want %q", got, tc.want)
				}
			})
		}

		stop := errors.New("stop here")
		calls := 0
		err := bkt.Iter(ctx, "", func(string) error {
			calls++
			return stop
		}, true)
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Iter with failing callback: err %v after %d calls, want %v after 1", err, calls, stop)
		}
	})

	t.Run("unsafe names rejected", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		for _, name := range []string{"", "/abs", "../escape", "a/../../b", "a/./b", "a//b", "dir/"} {
			if err := bkt.Upload(ctx, name, strings.NewReader("x"), 1); err == nil {
				t.Errorf("Upload(%q) succeeded, want error", name)
			}
			if _, err := bkt.Get(ctx, name); err == nil || bucket.IsNotFound(err) {
				t.Errorf("Get(%q) error = %v, want invalid name", name, err)
			}
			if err := bkt.Delete(ctx, name); err == nil {
				t.Errorf("Delete(%q) succeeded, want error", name)
			}
		}
		if err := bkt.Iter(ctx, "../up", func(string) error { return nil }, false); err == nil {
			t.Error(`Iter("../up") succeeded, want error`)
		}
	})

	t.Run("concurrent uploads", func(t *testing.T) {
		ctx := testContext(t)
		bkt := newBucket(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				name := fmt.Sprintf("c/%02d", i)
				errs <- bkt.Upload(ctx, name, strings.NewReader(name), int64(len(name)))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Upload: %v", err)
			}
		}
		if got := iterNames(t, bkt, "c", false); len(got) != 16 {
			t.Errorf("Iter found %d objects, want 16", len(got))
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		bkt := newBucket(t)
		mustUpload(t, bkt, "obj", "x")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := bkt.Upload(ctx, "other", strings.NewReader("y"), 1); err == nil {
			t.Error("Upload with canceled context succeeded")
		}
		if rc, err := bkt.Get(ctx, "obj"); err == nil {
			_ = rc.Close()
			t.Error("Get with canceled context succeeded")
		}
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustUpload(t *testing.T, bkt bucket.Bucket, name, content string) {
	t.Helper()
	if err := bkt.Upload(testContext(t), name, strings.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("Upload(%q): %v", name, err)
	}
}

func mustGet(t *testing.T, bkt bucket.Bucket, name string) string {
	t.Helper()
	rc, err := bkt.Get(testContext(t), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return readAll(t, rc)
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	var buf bytes.Buffer
	_, err := io.Copy(&buf, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	return buf.String()
}

func iterNames(t *testing.T, bkt bucket.Bucket, dir string, recursive bool) []string {
	t.Helper()
	var names []string
	if err := bkt.Iter(testContext(t), dir, func(name string) error {
		names = append(names, name)
		return nil
	}, recursive); err != nil {
		t.Fatalf("Iter(%q, recursive=%v): %v", dir, recursive, err)
	}
	slices.Sort(names)
	return names
}
