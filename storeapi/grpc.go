package storeapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/storeapi/storepb"
)

// seriesBatchSize is how many series travel in one streamed message: large
// enough to amortise per-message cost, small enough to start streaming early.
const seriesBatchSize = 64

// storeServer serves a Store over gRPC.
type storeServer struct {
	storepb.UnimplementedStoreServer
	store Store
}

// RegisterStoreServer serves store as the Store API on s.
func RegisterServer(s *grpc.Server, store Store) {
	storepb.RegisterStoreServer(s, &storeServer{store: store})
}

func (s *storeServer) Info(ctx context.Context, _ *storepb.InfoRequest) (*storepb.InfoResponse, error) {
	scope, err := incomingScope(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.store.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	info = scopedInfo(scope, info)
	resp := &storepb.InfoResponse{MinTime: info.MinTime, MaxTime: info.MaxTime, Component: info.Component}
	for _, ls := range info.LabelSets {
		resp.LabelSets = append(resp.LabelSets, &storepb.LabelSet{Labels: labelsToPB(ls)})
	}
	return resp, nil
}

func (s *storeServer) Series(req *storepb.SeriesRequest, srv storepb.Store_SeriesServer) error {
	scope, err := incomingScope(srv.Context())
	if err != nil {
		return err
	}
	ms, err := matchersFromPB(req.Matchers)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	ms = scoped(scope, ms)
	r := &SeriesRequest{
		MinTime:       req.MinTime,
		MaxTime:       req.MaxTime,
		Matchers:      ms,
		SkipChunks:    req.SkipChunks,
		MaxResolution: req.MaxResolutionWindow,
		Aggregate:     req.Aggregate,
	}
	if h := req.Hints; h != nil {
		r.Hints = &storage.SelectHints{Start: h.Start, End: h.End, Step: h.Step, Func: h.Func, By: h.By, Grouping: h.Grouping, Range: h.Range, Limit: int(h.Limit)}
	}
	batch := &storepb.SeriesResponse{}
	flush := func() error {
		if len(batch.Series) == 0 {
			return nil
		}
		err := srv.Send(batch)
		batch.Series = batch.Series[:0]
		return err
	}
	warns, err := s.store.Series(srv.Context(), r, func(ss Series) error {
		chks := ss.Chunks
		ps := &storepb.Series{Labels: labelsToPB(ss.Labels), Resolution: ss.Resolution}
		if len(chks) > 0 {
			ps.Chunks = make([]*storepb.Chunk, 0, len(chks))
			for _, c := range chks {
				// The bytes are only valid during this call, and Send
				// happens later.
				ps.Chunks = append(ps.Chunks, &storepb.Chunk{
					MinTime:  c.MinTime,
					MaxTime:  c.MaxTime,
					Encoding: uint32(c.Chunk.Encoding()),
					Data:     bytes.Clone(c.Chunk.Bytes()),
				})
			}
		}
		batch.Series = append(batch.Series, ps)
		if len(batch.Series) >= seriesBatchSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return toStatus(err)
	}
	if err := flush(); err != nil {
		return err
	}
	if len(warns) > 0 {
		return srv.Send(&storepb.SeriesResponse{Warnings: warningStrings(warns)})
	}
	return nil
}

func (s *storeServer) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	scope, err := incomingScope(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := matchersFromPB(req.Matchers)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	ms = scoped(scope, ms)
	names, warns, err := s.store.LabelNames(ctx, &LabelsRequest{MinTime: req.MinTime, MaxTime: req.MaxTime, Matchers: ms, Limit: int(req.Limit)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.LabelNamesResponse{Names: names, Warnings: warningStrings(warns)}, nil
}

func (s *storeServer) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	scope, err := incomingScope(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := matchersFromPB(req.Matchers)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	ms = scoped(scope, ms)
	values, warns, err := s.store.LabelValues(ctx, req.Name, &LabelsRequest{MinTime: req.MinTime, MaxTime: req.MaxTime, Matchers: ms, Limit: int(req.Limit)})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.LabelValuesResponse{Values: values, Warnings: warningStrings(warns)}, nil
}

func (s *storeServer) Exemplars(ctx context.Context, req *storepb.ExemplarsRequest) (*storepb.ExemplarsResponse, error) {
	scope, err := incomingScope(ctx)
	if err != nil {
		return nil, err
	}
	sets := make([][]*labels.Matcher, 0, len(req.MatcherSets))
	for _, set := range req.MatcherSets {
		ms, err := matchersFromPB(set.Matchers)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		sets = append(sets, scoped(scope, ms))
	}

	res, err := s.store.Exemplars(ctx, req.MinTime, req.MaxTime, sets)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &storepb.ExemplarsResponse{Series: make([]*storepb.ExemplarSeries, 0, len(res))}
	for _, r := range res {
		es := &storepb.ExemplarSeries{SeriesLabels: labelsToPB(r.SeriesLabels)}
		for _, e := range r.Exemplars {
			es.Exemplars = append(es.Exemplars, &storepb.Exemplar{Labels: labelsToPB(e.Labels), Value: e.Value, Timestamp: e.Ts})
		}
		resp.Series = append(resp.Series, es)
	}
	return resp, nil
}

func (s *storeServer) Metadata(ctx context.Context, req *storepb.MetadataRequest) (*storepb.MetadataResponse, error) {
	scope, err := incomingScope(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := matchersFromPB(req.Matchers)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	ms = scoped(scope, ms)
	res, err := s.store.Metadata(ctx, &MetadataRequest{Metric: req.Metric, Limit: int(req.Limit), Matchers: ms})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &storepb.MetadataResponse{}
	for name, list := range res {
		for _, m := range list {
			resp.Metadata = append(resp.Metadata, &storepb.MetricMetadata{Metric: name, Type: string(m.Type), Help: m.Help, Unit: m.Unit})
		}
	}
	return resp, nil
}

// toStatus keeps a context's end recognisable across the wire.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func warningStrings(a annotations.Annotations) []string {
	if len(a) == 0 {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, err := range a {
		out = append(out, err.Error())
	}
	return out
}

func labelsToPB(ls labels.Labels) []*storepb.Label {
	out := make([]*storepb.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) { out = append(out, &storepb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func labelsFromPB(b *labels.ScratchBuilder, pb []*storepb.Label) labels.Labels {
	b.Reset()
	for _, l := range pb {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

func matchersToPB(ms []*labels.Matcher) []*storepb.Matcher {
	out := make([]*storepb.Matcher, 0, len(ms))
	for _, m := range ms {
		var t storepb.Matcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = storepb.Matcher_EQ
		case labels.MatchNotEqual:
			t = storepb.Matcher_NEQ
		case labels.MatchRegexp:
			t = storepb.Matcher_RE
		case labels.MatchNotRegexp:
			t = storepb.Matcher_NRE
		}
		out = append(out, &storepb.Matcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out
}

func matchersFromPB(pb []*storepb.Matcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(pb))
	for _, m := range pb {
		var t labels.MatchType
		switch m.Type {
		case storepb.Matcher_EQ:
			t = labels.MatchEqual
		case storepb.Matcher_NEQ:
			t = labels.MatchNotEqual
		case storepb.Matcher_RE:
			t = labels.MatchRegexp
		case storepb.Matcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		out = append(out, lm)
	}
	return out, nil
}

// Remote is a Store reached over gRPC: a receiver or a store gateway.
// Its Info is refreshed in the background so queries never wait for it.
type Remote struct {
	name   string
	client storepb.StoreClient

	mtx      sync.RWMutex
	info     Info
	infoErr  error
	infoTime time.Time
}

// NewRemote returns a Store served by conn, named name (its address).
func NewRemote(name string, conn grpc.ClientConnInterface) *Remote {
	return &Remote{
		name:    name,
		client:  storepb.NewStoreClient(conn),
		infoErr: errors.New("store info not fetched yet"),
	}
}

var _ Store = (*Remote)(nil)

// Name implements Store.
func (s *Remote) Name() string { return s.name }

// RefreshInfo asks the store what it holds and remembers the answer.
func (s *Remote) RefreshInfo(ctx context.Context) error {
	resp, err := s.client.Info(outgoing(ctx), &storepb.InfoRequest{})
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if err != nil {
		s.infoErr = err
		return err
	}
	info := Info{MinTime: resp.MinTime, MaxTime: resp.MaxTime, Component: resp.Component}
	var b labels.ScratchBuilder
	for _, ls := range resp.LabelSets {
		info.LabelSets = append(info.LabelSets, labelsFromPB(&b, ls.Labels))
	}
	s.info, s.infoErr, s.infoTime = info, nil, time.Now()
	return nil
}

// Info implements Store with the last answer of RefreshInfo. A store that
// never answered is assumed to hold anything, so its failure shows in the
// query rather than silently leaving it out.
func (s *Remote) Info(context.Context) (Info, error) {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	if s.infoErr != nil && s.infoTime.IsZero() {
		return Info{MinTime: math.MinInt64, MaxTime: math.MaxInt64}, nil
	}
	info := s.info
	if info.Component != ComponentStore {
		// Receivers keep appending: their newest data is always newer than
		// the last Info said.
		info.MaxTime = math.MaxInt64
	}
	return info, nil
}

// Series implements Store.
func (s *Remote) Series(ctx context.Context, req *SeriesRequest, f SeriesFunc) (annotations.Annotations, error) {
	pr := &storepb.SeriesRequest{
		MinTime:             req.MinTime,
		MaxTime:             req.MaxTime,
		Matchers:            matchersToPB(req.Matchers),
		SkipChunks:          req.SkipChunks,
		MaxResolutionWindow: req.MaxResolution,
		Aggregate:           req.Aggregate,
	}
	if h := req.Hints; h != nil {
		pr.Hints = &storepb.Hints{Start: h.Start, End: h.End, Step: h.Step, Func: h.Func, By: h.By, Grouping: h.Grouping, Range: h.Range, Limit: int64(h.Limit)}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.Series(outgoing(ctx), pr)
	if err != nil {
		return nil, err
	}
	var (
		warns annotations.Annotations
		b     labels.ScratchBuilder
		chks  []chunks.Meta
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return warns, nil
		}
		if err != nil {
			return warns, err
		}
		for _, w := range resp.Warnings {
			warns.Add(fmt.Errorf("store %s: %s", s.name, w))
		}
		for _, ps := range resp.Series {
			chks = chks[:0]
			for _, c := range ps.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				if err != nil {
					return warns, fmt.Errorf("store %s sent a bad chunk: %w", s.name, err)
				}
				chks = append(chks, chunks.Meta{Chunk: chk, MinTime: c.MinTime, MaxTime: c.MaxTime})
			}
			if err := f(Series{Labels: labelsFromPB(&b, ps.Labels), Chunks: chks, Resolution: ps.Resolution, ChunksOwned: true}); err != nil {
				return warns, err
			}
		}
	}
}

// LabelNames implements Store.
func (s *Remote) LabelNames(ctx context.Context, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	resp, err := s.client.LabelNames(outgoing(ctx), &storepb.LabelNamesRequest{MinTime: req.MinTime, MaxTime: req.MaxTime, Matchers: matchersToPB(req.Matchers), Limit: int64(req.Limit)})
	if err != nil {
		return nil, nil, err
	}
	return resp.Names, s.warnings(resp.Warnings), nil
}

// LabelValues implements Store.
func (s *Remote) LabelValues(ctx context.Context, name string, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	resp, err := s.client.LabelValues(outgoing(ctx), &storepb.LabelValuesRequest{Name: name, MinTime: req.MinTime, MaxTime: req.MaxTime, Matchers: matchersToPB(req.Matchers), Limit: int64(req.Limit)})
	if err != nil {
		return nil, nil, err
	}
	return resp.Values, s.warnings(resp.Warnings), nil
}

func (s *Remote) warnings(ws []string) annotations.Annotations {
	var a annotations.Annotations
	for _, w := range ws {
		a.Add(fmt.Errorf("store %s: %s", s.name, w))
	}
	return a
}

// Exemplars implements Store.
func (s *Remote) Exemplars(ctx context.Context, mint, maxt int64, matchers [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &storepb.ExemplarsRequest{MinTime: mint, MaxTime: maxt}
	for _, ms := range matchers {
		req.MatcherSets = append(req.MatcherSets, &storepb.MatcherSet{Matchers: matchersToPB(ms)})
	}
	resp, err := s.client.Exemplars(outgoing(ctx), req)
	if err != nil {
		return nil, err
	}
	var b labels.ScratchBuilder
	out := make([]exemplar.QueryResult, 0, len(resp.Series))
	for _, es := range resp.Series {
		r := exemplar.QueryResult{SeriesLabels: labelsFromPB(&b, es.SeriesLabels)}
		for _, e := range es.Exemplars {
			r.Exemplars = append(r.Exemplars, exemplar.Exemplar{Labels: labelsFromPB(&b, e.Labels), Value: e.Value, Ts: e.Timestamp, HasTs: true})
		}
		out = append(out, r)
	}
	return out, nil
}

// Metadata implements Store.
func (s *Remote) Metadata(ctx context.Context, req *MetadataRequest) (map[string][]metadata.Metadata, error) {
	resp, err := s.client.Metadata(outgoing(ctx), &storepb.MetadataRequest{Metric: req.Metric, Limit: int64(req.Limit), Matchers: matchersToPB(req.Matchers)})
	if err != nil {
		return nil, err
	}
	out := map[string][]metadata.Metadata{}
	for _, m := range resp.Metadata {
		out[m.Metric] = append(out[m.Metric], metadata.Metadata{Type: model.MetricType(m.Type), Help: m.Help, Unit: m.Unit})
	}
	return out, nil
}
