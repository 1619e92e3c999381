package frontend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestParseCacheConfig(t *testing.T) {
	c, err := ParseCacheConfig([]byte("type: memcached\nconfig:\n  addresses: [a:11211, b:11211]\n  expiration: 24h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != CacheMemcached || len(c.Config.Addresses) != 2 || c.Config.Expiration != model.Duration(24*time.Hour) ||
		c.Config.Timeout != model.Duration(500*time.Millisecond) || c.Config.MaxItemSize != 1<<20 {
		t.Fatalf("memcached config with defaults: %+v", c)
	}
	c, err = ParseCacheConfig([]byte("type: IN-MEMORY\nconfig:\n  max_size: 64MiB\n"))
	if err != nil || c.Config.MaxSize != 64<<20 {
		t.Fatalf("in-memory: %+v %v", c, err)
	}
	for _, bad := range []string{
		"type: REDIS\n",
		"type: MEMCACHED\nconfig: {}\n",
		"type: IN-MEMORY\nconfig:\n  max_sise: 1MiB\n",
		"type: IN-MEMORY\nconfig:\n  max_size: lots\n",
	} {
		if _, err := ParseCacheConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseLimits(t *testing.T) {
	l, err := ParseLimits([]byte(`
default:
  max_query_length: 31d
  max_samples: 1000000
tenants:
  a:
    max_samples: 10
  b: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.For("a"); got.MaxSamples != 10 || got.MaxQueryLength != model.Duration(31*24*time.Hour) || got.MaxQueuedQueries != defaultMaxQueued {
		t.Fatalf("tenant a starts from the default: %+v", got)
	}
	if got := l.For("b"); got != l.Default {
		t.Fatalf("tenant b: %+v", got)
	}
	if got := l.For("unknown"); got != l.Default {
		t.Fatalf("unknown tenant: %+v", got)
	}
	if _, err := ParseLimits([]byte("default:\n  max_query_lenght: 1d\n")); err == nil || !strings.Contains(err.Error(), "max_query_lenght") {
		t.Fatalf("misspelt field: %v", err)
	}
	if _, err := ParseLimits(nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestMemoryCacheBounds(t *testing.T) {
	c := newMemoryCache(3*(itemOverhead+10), 0, nil)
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3"} {
		c.Store(ctx, k, []byte("12345678"))
	}
	c.Fetch(ctx, []string{"k1"}) // k1 is now the most recently used
	c.Store(ctx, "k4", []byte("12345678"))
	got := c.Fetch(ctx, []string{"k1", "k2", "k3", "k4"})
	if _, ok := got["k2"]; ok || len(got) != 3 {
		t.Fatalf("after eviction: %v", got)
	}
	c.Store(ctx, "huge", make([]byte, 1000))
	if len(c.Fetch(ctx, []string{"huge"})) != 0 {
		t.Fatal("an entry larger than the cache was kept")
	}

	now := time.Unix(1000, 0)
	v := newMemoryCache(1<<20, time.Minute, nil)
	v.now = func() time.Time { return now }
	v.Store(ctx, "k", []byte("v"))
	now = now.Add(59 * time.Second)
	if len(v.Fetch(ctx, []string{"k"})) != 1 {
		t.Fatal("entry gone before its validity")
	}
	now = now.Add(2 * time.Second)
	if len(v.Fetch(ctx, []string{"k"})) != 0 {
		t.Fatal("entry used after its validity")
	}
}
