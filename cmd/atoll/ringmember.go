package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

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

// memberHealthService is the gRPC health service a member answers as
// itself: the probe asks for the member's own id, so an address that
// answers for another member (or for nobody) does not count.
func memberHealthService(id string) string { return "atoll.member/" + id }

// registerMemberHealth lets ring members probe this process's gRPC server
// as the member id.
func registerMemberHealth(s *grpc.Server, id string) {
	h := health.NewServer()
	h.SetServingStatus(memberHealthService(id), healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
}

// memberProbe asks a member, over the gRPC credentials of this process,
// whether it serves as itself at its gRPC address: with mutual TLS only a
// member holding a certificate of the cluster's CA can answer.
func memberProbe(dial grpc.DialOption) func(ctx context.Context, m ring.Member) error {
	return func(ctx context.Context, m ring.Member) error {
		conn, err := grpc.NewClient(m.GRPCAddr, dial)
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: memberHealthService(m.ID)})
		if status.Code(err) == codes.Unimplemented {
			// A member of a version without the health service: it
			// answered, past the handshake, which is what matters for a
			// rolling upgrade.
			return nil
		}
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s answers %s for member %s", m.GRPCAddr, resp.GetStatus(), m.ID)
		}
		return nil
	}
}
