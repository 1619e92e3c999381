package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/atoll-metrics/atoll/querier"
	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/web"
)

// queryCmdConfig is `atoll query`: PromQL over every receiver the ring
// knows and every store gateway given or discovered.
type queryCmdConfig struct {
	server        serverConfig
	grpcClient    grpcClientConfig
	query         queryConfig
	ring          ring.Config
	noRing        bool
	stores        []string
	checkInterval model.Duration
}

func registerQuery(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("query", "Run a querier: the Prometheus HTTP API over every receiver and store gateway, with replicas deduplicated.")
	c := &queryCmdConfig{ring: ring.DefaultConfig()}
	c.server.register(cmd, "0.0.0.0", false)
	c.grpcClient.register(cmd)
	c.query.register(cmd)
	c.ring.RegisterFlags(cmd)
	c.checkInterval = model.Duration(5 * time.Second)
	cmd.Flag("store", "Store API address (host:port) to query besides the ring's members, e.g. a store gateway. Repeatable.").
		PlaceHolder("<host:port>").StringsVar(&c.stores)
	cmd.Flag("store.check-interval", "How often every store is asked what it holds; stores that fail the check are left out of queries until they answer again.").
		Default("5s").SetValue(&c.checkInterval)
	cmd.Flag("ring.disable", "Do not join the gossip ring; query only the --store addresses.").
		BoolVar(&c.noRing)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupQuery(g, logger, reg, c, flagValues(app, cmd))
	}
}

func setupQuery(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *queryCmdConfig, flags map[string]string) (func(), error) {
	ready := &readiness{}
	dial, err := c.grpcClient.dialOption()
	if err != nil {
		return nil, err
	}
	endpoints := storeapi.NewEndpoints(logger.With("subsystem", "endpoints"), reg, dial)
	q := querier.New(endpoints.Stores, c.query.options(), logger.With("subsystem", "querier"), reg)
	apiOpts, err := c.query.apiOptions(flags)
	if err != nil {
		return nil, err
	}
	apiOpts.Ready = ready.isReady
	apiOpts.BuildInfo = buildInfo()
	apiOpts.Config = runningConfig{Command: "query", Flags: flags}.String()
	mux := newOpsMux(reg, ready, &c.server.http)
	mux.Handle("/api/v1/", querier.NewAPI(q, apiOpts, logger.With("subsystem", "api"), reg, reg))
	ringPage := &lateHandler{}
	var joined atomic.Pointer[ring.Ring]
	wo := c.query.webOptions(newWebOptions("query", c.ring.InstanceID, flags, logger))
	wo.Stores = endpointStores(endpoints)
	if err := c.server.http.prepare(); err != nil {
		return nil, err
	}
	if c.server.http.security.TLS {
		// Receivers serve the same web config: reach their tenant pages
		// over TLS, trusting what their gRPC is trusted with.
		tlsCfg, err := c.grpcClient.tls.TLSConfig()
		if err != nil {
			return nil, err
		}
		wo.ReceiverScheme = "https"
		wo.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	}
	if !c.noRing {
		wo.Ring = ringPage
		wo.Receivers = ringReceivers(&joined)
	}
	web.New(wo).Register(mux)
	httpAddr, err := c.server.http.serve(g, logger, reg, "http", c.server.httpAddress, mux)
	if err != nil {
		return nil, err
	}

	var rg *ring.Ring
	if !c.noRing {
		rc := c.ring
		rc.Probe = memberProbe(dial)
		if rg, err = joinRing(g, logger, reg, rc, ring.RoleQuerier, httpAddr, nil, "", ready, ringPage); err != nil {
			return nil, err
		}
		joined.Store(rg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		endpoints.Set(ctx, c.stores, true)
		if rg != nil {
			endpoints.Set(ctx, storeAddresses(rg.Snapshot()), false)
			rg.SetState(ring.StateActive)
		}
		ready.set(true)
		var follow sync.WaitGroup
		if rg != nil {
			// Follow the ring: receivers joining or leaving change the
			// stores at once, without waiting for the next check.
			follow.Go(func() {
				for {
					s := rg.Snapshot()
					select {
					case <-s.Changed():
						endpoints.Set(ctx, storeAddresses(rg.Snapshot()), false)
					case <-ctx.Done():
						return
					}
				}
			})
		}
		err := endpoints.Run(ctx, time.Duration(c.checkInterval))
		follow.Wait()
		return err
	}, func(error) {
		ready.set(false)
		cancel()
	})
	return nil, nil
}

// storeAddresses lists the Store API addresses of the ring's receivers and
// store gateways.
func storeAddresses(s *ring.Snapshot) []string {
	var out []string
	for i, m := range s.Members() {
		if i == s.Self() || m.GRPCAddr == "" {
			continue
		}
		if m.Role == ring.RoleReceiver || m.Role == ring.RoleStoreGateway {
			out = append(out, m.GRPCAddr)
		}
	}
	return out
}
