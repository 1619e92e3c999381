package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/ring"
)

// joinRing starts gossip as role and adds the member's lifecycle to g: on
// interrupt the process stops being ready, then leaves the ring (LEAVING,
// then gone). grpcAddr is nil for members that serve no gRPC. The ring page
// goes to page.
func joinRing(g *run.Group, logger *slog.Logger, reg prometheus.Registerer, rc ring.Config, role ring.Role,
	httpAddr, grpcAddr net.Addr, grpcAdvertise string, ready *readiness, page *lateHandler) (*ring.Ring, error) {
	rc.Role = role
	rc.HTTPAddress = httpAddr.String()
	if grpcAddr != nil {
		rc.GRPCAddress = grpcAdvertise
		if rc.GRPCAddress == "" {
			rc.GRPCAddress = advertiseAddress(grpcAddr, rc.AdvertiseAddress, rc.ListenAddress)
		}
	}
	rg, err := ring.New(rc, logger.With("subsystem", "ring"), reg)
	if err != nil {
		return nil, err
	}
	page.set(rg)
	ctx, stop := context.WithCancel(context.Background())
	g.Add(func() error { return rg.Run(ctx) }, func(error) {
		ready.set(false)
		stop()
	})
	return rg, nil
}
