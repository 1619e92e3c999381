package ship

import (
	"fmt"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		n        int
		interval time.Duration
		want     time.Duration // before ±20% jitter
	}{
		{1, 30 * time.Second, time.Second},
		{2, 30 * time.Second, 2 * time.Second},
		{4, 30 * time.Second, 8 * time.Second},
		{7, 30 * time.Second, time.Minute}, // 64s capped at a minute
		{100, 30 * time.Second, time.Minute},
		{1, 100 * time.Millisecond, 100 * time.Millisecond},
		{100, 5 * time.Minute, 5 * time.Minute}, // never slower than the interval's cap
	} {
		t.Run(fmt.Sprintf("n=%d,interval=%v", tc.n, tc.interval), func(t *testing.T) {
			for range 50 {
				got := retryDelay(tc.n, tc.interval)
				if lo, hi := tc.want-tc.want/5, tc.want+tc.want/5; got < lo || got > hi {
					t.Fatalf("retryDelay = %v, want within [%v, %v]", got, lo, hi)
				}
			}
		})
	}
}
