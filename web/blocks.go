package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Block is one block of a bucket.
type Block struct {
	// Meta is the block's meta.json: anything that marshals to it.
	Meta any
	// Deletion and NoCompact are the block's marks as the bucket holds
	// them; nil when the block has none.
	Deletion  any
	NoCompact any
}

// BlockList is a listing of a bucket.
type BlockList struct {
	// Label names the bucket.
	Label  string
	Blocks []Block
	// Partial lists block directories without meta.json: uploads in
	// progress or interrupted.
	Partial []string
	// Unreadable maps blocks whose meta.json does not decode to the error.
	Unreadable map[string]string
}

// blocksJSON is /api/v1/blocks: Thanos's BlocksInfo, whose blocks are
// meta.json objects; Atoll adds each block's marks to its meta and lists
// the directories it could not read.
type blocksJSON struct {
	Label       string            `json:"label"`
	Blocks      []json.RawMessage `json:"blocks"`
	RefreshedAt time.Time         `json:"refreshedAt"`
	Err         *string           `json:"err"`
	Partial     []string          `json:"partial"`
	Unreadable  map[string]string `json:"unreadable"`
}

// blocksCache keeps the last listing: listing a big bucket reads every
// meta.json once and costs requests against object storage.
type blocksCache struct {
	mtx  sync.Mutex
	last *blocksJSON
}

// blockList answers /api/v1/blocks from a listing at most BlocksMaxAge
// old; refresh=true asks for a new one.
func (u *UI) blockList(w http.ResponseWriter, r *http.Request) {
	c := &u.blocks
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if c.last == nil || r.URL.Query().Get("refresh") == "true" || time.Since(c.last.RefreshedAt) > u.opts.BlocksMaxAge {
		c.last = u.listBlocks(r)
	}
	writeData(w, c.last)
}

func (u *UI) listBlocks(r *http.Request) *blocksJSON {
	out := &blocksJSON{Blocks: []json.RawMessage{}, Partial: []string{}, Unreadable: map[string]string{}, RefreshedAt: time.Now()}
	list, err := u.opts.Blocks(r.Context())
	if err == nil {
		err = encodeBlocks(out, list)
	}
	if err != nil {
		msg := err.Error()
		out.Err = &msg
		u.opts.Logger.Warn("listing blocks for the UI failed", "err", err)
	}
	return out
}

func encodeBlocks(out *blocksJSON, list *BlockList) error {
	out.Label = list.Label
	if list.Partial != nil {
		out.Partial = list.Partial
	}
	if list.Unreadable != nil {
		out.Unreadable = list.Unreadable
	}
	for _, b := range list.Blocks {
		raw, err := json.Marshal(b.Meta)
		if err != nil {
			return fmt.Errorf("encode block meta: %w", err)
		}
		marks := map[string]json.RawMessage{}
		for key, mark := range map[string]any{"deletionMark": b.Deletion, "noCompactMark": b.NoCompact} {
			m, err := json.Marshal(mark)
			if err != nil {
				return fmt.Errorf("encode block mark: %w", err)
			}
			if string(m) != "null" {
				marks[key] = m
			}
		}
		if len(marks) > 0 {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return fmt.Errorf("block meta is not an object: %w", err)
			}
			for k, v := range marks {
				obj[k] = v
			}
			if raw, err = json.Marshal(obj); err != nil {
				return err
			}
		}
		out.Blocks = append(out.Blocks, raw)
	}
	return nil
}
