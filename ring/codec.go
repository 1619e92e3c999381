package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Gossip messages start with a format version and a kind. A full message
// carries a whole record (about 4 bytes per token plus addresses). A beat
// carries only what a heartbeat changes plus the digest of the rest, so that
// the frequent heartbeats stay small; it applies only where the receiver
// already holds the record it refers to. Push/pull state is a list of full
// records.
const (
	codecVersion = 1

	kindFull  byte = 1
	kindBeat  byte = 2
	kindState byte = 3
)

var errMalformed = errors.New("malformed gossip message")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRecord(b []byte, r *record) []byte {
	b = appendString(b, r.id)
	b = appendString(b, r.nodeName)
	b = appendString(b, string(r.role))
	b = append(b, byte(r.state))
	b = binary.AppendVarint(b, r.heartbeat)
	b = appendString(b, r.zone)
	b = appendString(b, r.grpcAddr)
	b = appendString(b, r.httpAddr)
	b = appendString(b, r.gossipAddr)
	b = binary.AppendUvarint(b, uint64(len(r.tokens)))
	for _, t := range r.tokens {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	return b
}

func encodeFull(r *record) []byte {
	return appendRecord([]byte{codecVersion, kindFull}, r)
}

// beat is the decoded form of a heartbeat message.
type beat struct {
	id        string
	state     State
	heartbeat int64
	digest    uint64
}

func encodeBeat(r *record) []byte {
	b := []byte{codecVersion, kindBeat}
	b = appendString(b, r.id)
	b = append(b, byte(r.state))
	b = binary.AppendVarint(b, r.heartbeat)
	return binary.LittleEndian.AppendUint64(b, r.digest)
}

func encodeState(recs []*record) []byte {
	b := []byte{codecVersion, kindState}
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = appendRecord(b, r)
	}
	return b
}

// decoder reads from a buffer that the sender controls: every read is bounds
// checked and the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errMalformed, what)
	}
	d.b = nil
}

func (d *decoder) byte(what string) byte {
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n]) // copies: memberlist reuses the buffer
	d.b = d.b[n:]
	return s
}

func (d *decoder) uint64(what string) uint64 {
	if len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) state() State {
	s := State(d.byte("state"))
	if s < StateJoining || s > stateLeft {
		d.fail("state")
	}
	return s
}

func (d *decoder) record() *record {
	r := &record{
		id:         d.string("id"),
		nodeName:   d.string("node name"),
		role:       Role(d.string("role")),
		state:      d.state(),
		heartbeat:  d.varint("heartbeat"),
		zone:       d.string("zone"),
		grpcAddr:   d.string("grpc address"),
		httpAddr:   d.string("http address"),
		gossipAddr: d.string("gossip address"),
	}
	n := d.uvarint("token count")
	if n > maxTokens || n*4 > uint64(len(d.b)) {
		d.fail("token count")
		return nil
	}
	if n > 0 {
		r.tokens = make([]uint32, n)
		for i := range r.tokens {
			r.tokens[i] = binary.LittleEndian.Uint32(d.b[4*i:])
		}
		d.b = d.b[4*n:]
		if !isSortedUnique(r.tokens) {
			d.fail("tokens")
		}
	}
	if d.err != nil {
		return nil
	}
	if r.id == "" {
		d.fail("id")
		return nil
	}
	r.computeDigest()
	return r
}

func isSortedUnique(ts []uint32) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// decodeHeader checks the version and returns the kind and the payload.
func decodeHeader(b []byte) (byte, []byte, error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("%w: too short", errMalformed)
	}
	if b[0] != codecVersion {
		return 0, nil, fmt.Errorf("%w: unknown format version %d", errMalformed, b[0])
	}
	return b[1], b[2:], nil
}

func decodeFull(payload []byte) (*record, error) {
	d := decoder{b: payload}
	r := d.record()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return r, d.err
}

func decodeBeat(payload []byte) (beat, error) {
	d := decoder{b: payload}
	m := beat{id: d.string("id"), state: d.state(), heartbeat: d.varint("heartbeat"), digest: d.uint64("digest")}
	if d.err == nil && (m.id == "" || len(d.b) != 0) {
		d.fail("beat")
	}
	return m, d.err
}

func decodeState(payload []byte) ([]*record, error) {
	d := decoder{b: payload}
	n := d.uvarint("record count")
	// Every record takes more than 8 bytes, which bounds n by the input.
	if n > uint64(len(d.b))/8 {
		d.fail("record count")
		return nil, d.err
	}
	recs := make([]*record, 0, n)
	for range n {
		r := d.record()
		if d.err != nil {
			return nil, d.err
		}
		recs = append(recs, r)
	}
	if len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return recs, d.err
}
