package ring

import (
	"slices"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func TestFlags(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, c Config)
	}{
		{"defaults", nil, func(t *testing.T, c Config) {
			def := DefaultConfig()
			if c.ListenAddress != "0.0.0.0:7946" || c.NumTokens != 128 || c.HeartbeatPeriod != 5*time.Second ||
				c.HeartbeatTimeout != 30*time.Second || c.ForgetAfter != 10*time.Minute || c.InstanceID != def.InstanceID ||
				len(c.Join) != 0 || c.ReplicationFactor != 3 || c.Role != RoleReceiver {
				t.Fatalf("defaults: %+v", c)
			}
			if err := c.validate(); err != nil {
				t.Fatal(err)
			}
		}},
		{"everything set", []string{
			"--ring.listen-address=127.0.0.1:0", "--ring.advertise-address=10.0.0.1:7000",
			"--ring.join=a:7946", "--ring.join=receivers.atoll.svc", "--ring.instance-id=r1",
			"--ring.cluster-label=prod", "--ring.zone=eu-1a", "--ring.tokens=64",
			"--ring.heartbeat-period=1s", "--ring.heartbeat-timeout=10s", "--ring.forget-after=1h",
		}, func(t *testing.T, c Config) {
			if c.ListenAddress != "127.0.0.1:0" || c.AdvertiseAddress != "10.0.0.1:7000" ||
				!slices.Equal(c.Join, []string{"a:7946", "receivers.atoll.svc"}) || c.InstanceID != "r1" ||
				c.ClusterLabel != "prod" || c.Zone != "eu-1a" || c.NumTokens != 64 || c.HeartbeatPeriod != time.Second ||
				c.HeartbeatTimeout != 10*time.Second || c.ForgetAfter != time.Hour {
				t.Fatalf("parsed: %+v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := kingpin.New("atoll", "")
			cmd := app.Command("receive", "")
			cfg := DefaultConfig()
			cfg.RegisterFlags(cmd)
			if _, err := app.Parse(append([]string{"receive"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}
