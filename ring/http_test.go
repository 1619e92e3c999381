package ring

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRingPage(t *testing.T) {
	ms := startCluster(t, 2, func(i int, cfg *Config) { cfg.Zone = []string{"east", "west"}[i] })
	a := ms[0]

	t.Run("json", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/ring", nil)
		req.Header.Set("Accept", "application/json")
		a.r.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		var st ringStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		if st.Self != "a" || st.ReplicationFactor != 3 || st.Healthy != 2 || len(st.Members) != 2 {
			t.Fatalf("status: %+v", st)
		}
		total := 0.0
		for _, m := range st.Members {
			total += m.OwnershipPercent
			if m.State != StateActive || !m.Healthy || m.Tokens != 128 || m.GRPCAddr == "" || m.GossipAddr == "" || m.Zone == "" {
				t.Errorf("member row: %+v", m)
			}
			if m.OwnershipPercent < 25 || m.OwnershipPercent > 75 {
				t.Errorf("%s owns %.1f%%", m.ID, m.OwnershipPercent)
			}
		}
		if total < 99.9 || total > 100.1 {
			t.Errorf("ownership sums to %.2f%%", total)
		}
		if !strings.Contains(rec.Body.String(), `"state": "ACTIVE"`) {
			t.Errorf("states are not readable: %s", rec.Body.String())
		}
	})

	t.Run("html", func(t *testing.T) {
		rec := httptest.NewRecorder()
		a.r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ring", nil))
		body := rec.Body.String()
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("content type %q", ct)
		}
		for _, want := range []string{"<table>", "<td>a</td>", "<td>b</td>", "ACTIVE", "healthy", "east", "west", "%", "ago", a.addr(), "a.grpc:10901"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
}
