package ring

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// memberStatus is one row of the ring page.
type memberStatus struct {
	ID                  string    `json:"id"`
	Role                Role      `json:"role"`
	State               State     `json:"state"`
	Zone                string    `json:"zone"`
	Healthy             bool      `json:"healthy"`
	Tokens              int       `json:"tokens"`
	OwnershipPercent    float64   `json:"ownership_percent"`
	Heartbeat           time.Time `json:"heartbeat"`
	HeartbeatAgeSeconds float64   `json:"heartbeat_age_seconds"`
	GRPCAddr            string    `json:"grpc_address"`
	HTTPAddr            string    `json:"http_address"`
	GossipAddr          string    `json:"gossip_address"`
	Self                bool      `json:"self"`
}

type ringStatus struct {
	Self              string         `json:"self"`
	ReplicationFactor int            `json:"replication_factor"`
	Healthy           int            `json:"healthy"`
	Members           []memberStatus `json:"members"`
}

func (r *Ring) status() ringStatus {
	s := r.Snapshot()
	now := r.now()
	share := s.ownership()
	st := ringStatus{Self: r.cfg.InstanceID, ReplicationFactor: s.rf, Members: make([]memberStatus, len(s.members))}
	for i, m := range s.members {
		if s.healthy[i] {
			st.Healthy++
		}
		st.Members[i] = memberStatus{
			ID:                  m.ID,
			Role:                m.Role,
			State:               m.State,
			Zone:                m.Zone,
			Healthy:             s.healthy[i],
			Tokens:              len(m.Tokens),
			OwnershipPercent:    100 * share[i],
			Heartbeat:           m.Heartbeat,
			HeartbeatAgeSeconds: max(0, now.Sub(m.Heartbeat).Seconds()),
			GRPCAddr:            m.GRPCAddr,
			HTTPAddr:            m.HTTPAddr,
			GossipAddr:          m.GossipAddr,
			Self:                i == s.self,
		}
	}
	return st
}

var ringPage = template.Must(template.New("ring").Funcs(template.FuncMap{
	"age": func(seconds float64) string {
		return (time.Duration(seconds * float64(time.Second))).Round(100 * time.Millisecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Atoll ring</title>
<style>
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; }
tr.unhealthy td { background: #fde8e8; }
tr.self td:first-child { font-weight: bold; }
</style>
</head>
<body>
<h1>Ring</h1>
<p>Seen by <b>{{.Self}}</b>: {{.Healthy}} of {{len .Members}} members healthy, replication factor {{.ReplicationFactor}}.</p>
<table>
<tr><th>Member</th><th>Role</th><th>State</th><th>Zone</th><th>Health</th><th>Tokens</th><th>Ownership</th><th>Last heartbeat</th><th>gRPC</th><th>HTTP</th><th>Gossip</th></tr>
{{range .Members}}<tr class="{{if .Healthy}}healthy{{else}}unhealthy{{end}}{{if .Self}} self{{end}}">
<td>{{.ID}}</td><td>{{.Role}}</td><td>{{.State}}</td><td>{{.Zone}}</td><td>{{if .Healthy}}healthy{{else}}unhealthy{{end}}</td>
<td class="num">{{.Tokens}}</td><td class="num">{{printf "%.1f%%" .OwnershipPercent}}</td><td class="num">{{age .HeartbeatAgeSeconds}} ago</td>
<td>{{.GRPCAddr}}</td><td>{{.HTTPAddr}}</td><td>{{.GossipAddr}}</td>
</tr>
{{end}}</table>
<p>Ownership is each member's share of the key space as primary owner, counting every member with tokens; unhealthy members' keys go to the next healthy members.</p>
</body>
</html>
`))

// ServeHTTP renders the ring page: JSON when the request accepts
// application/json, HTML otherwise.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	st := r.status()
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(req.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := ringPage.Execute(w, st); err != nil {
		r.logger.Debug("rendering the ring page failed", "err", err)
	}
}
