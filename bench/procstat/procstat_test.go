package procstat

import (
	"os"
	"testing"
	"time"
)

func TestProcessCPUCountsWork(t *testing.T) {
	pid := os.Getpid()
	before, err := ProcessCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the 10ms-resolution counter moves, or give up.
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		after, err := ProcessCPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			if self := SelfCPU(); self < after-before {
				t.Errorf("getrusage says %v, less than the %v /proc counted since the start", self, after-before)
			}
			return
		}
	}
	t.Fatalf("CPU time did not move after 5s of work (%d)", x)
}

func TestProcessMemory(t *testing.T) {
	rss, peak, err := ProcessMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss {
		t.Errorf("rss %d, peak %d: want 0 < rss <= peak", rss, peak)
	}
	if _, _, err := ProcessMemory(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}

func TestMachineCPU(t *testing.T) {
	busy0, idle0, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy0 <= 0 || idle0 < 0 {
		t.Errorf("busy %v, idle %v since boot", busy0, idle0)
	}
	frac, err := MachineBusy(50 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if frac < 0 || frac > 1 {
		t.Errorf("busy fraction %v outside [0, 1]", frac)
	}
}
