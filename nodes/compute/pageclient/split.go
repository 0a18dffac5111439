package pageclient

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ErrBadResponse is wrapped (inside a net.Status with code Internal) by the
// error for a response that does not answer its request: pages missing,
// extra, for other blocks or in another order, or another request's id.
// The client never retries it: a server that answers wrongly once may do so
// again, and a wrong page must never reach the caller.
var ErrBadResponse = errors.New("pageclient: response does not match its request")

// maxBlocksPerMessage keeps a response within net.MaxMessageBytes with room
// for framing.
const maxBlocksPerMessage = net.MaxMessageBytes/walrec.PageSize - 8

// Part is the blocks of a request one shard owns, in the request's
// relative order: Blocks[i] is the request's block at Positions[i].
type Part struct {
	Shard     shard.ShardNumber
	Positions []int
	Blocks    []uint32
}

// Split divides blocks of rel by owner shard under m. Parts come in shard
// order; a shard's blocks keep their relative order and are cut into
// parts of at most maxBlocks. Every position appears in exactly one part.
func Split(m ShardMap, rel keys.RelTag, blocks []uint32, maxBlocks int) []Part {
	maxBlocks = max(maxBlocks, 1)
	if m.Shards() == 1 && len(blocks) <= maxBlocks { // the common case: no routing
		pos := make([]int, len(blocks))
		for i := range pos {
			pos[i] = i
		}
		return []Part{{Positions: pos, Blocks: blocks}}
	}
	byShard := make([][]int, m.Shards())
	for i, b := range blocks {
		n := m.ShardOf(rel, b)
		byShard[n] = append(byShard[n], i)
	}
	var parts []Part
	for n, pos := range byShard {
		for len(pos) > 0 {
			k := min(len(pos), maxBlocks)
			p := Part{Shard: shard.ShardNumber(n), Positions: pos[:k:k], Blocks: make([]uint32, k)}
			for i, at := range p.Positions {
				p.Blocks[i] = blocks[at]
			}
			parts = append(parts, p)
			pos = pos[k:]
		}
	}
	return parts
}

// badResponse is the Internal error for a response that does not fit its
// request.
func badResponse(format string, args ...any) error {
	return net.Wrap(net.Internal, fmt.Errorf("%w: %s", ErrBadResponse, fmt.Sprintf(format, args...)))
}

// place checks that pages answer p exactly (one page per block, same
// blocks, same order) and puts each image at its request position in out.
// A position already filled is a misplaced page too.
func place(out [][]byte, filled []bool, p Part, pages []*pageapi.Page) error {
	if len(pages) != len(p.Blocks) {
		return badResponse("shard %d answered %d pages for %d blocks", p.Shard, len(pages), len(p.Blocks))
	}
	for i, pg := range pages {
		if pg.GetBlockNumber() != p.Blocks[i] {
			return badResponse("shard %d answered block %d at position %d of its part, want block %d", p.Shard, pg.GetBlockNumber(), i, p.Blocks[i])
		}
	}
	for i, pg := range pages {
		at := p.Positions[i]
		if at < 0 || at >= len(out) || filled[at] {
			return badResponse("shard %d's block %d lands on request position %d twice or outside the request", p.Shard, pg.GetBlockNumber(), at)
		}
		filled[at] = true
		out[at] = pg.GetImage()
	}
	return nil
}

// Reassemble puts the answers of parts (answers[i] answers parts[i]) back
// into the order of a request of n blocks: out[i] is the image of the
// request's block i. A missing, extra or misplaced page is an Internal
// error wrapping ErrBadResponse.
func Reassemble(n int, parts []Part, answers [][]*pageapi.Page) ([][]byte, error) {
	if len(answers) != len(parts) {
		return nil, badResponse("%d answers for %d parts", len(answers), len(parts))
	}
	out := make([][]byte, n)
	filled := make([]bool, n)
	for i, p := range parts {
		if err := place(out, filled, p, answers[i]); err != nil {
			return nil, err
		}
	}
	if err := checkFilled(filled); err != nil {
		return nil, err
	}
	return out, nil
}

// checkFilled reports a request position no answer filled.
func checkFilled(filled []bool) error {
	for i, f := range filled {
		if !f {
			return badResponse("no page for request position %d", i)
		}
	}
	return nil
}

// checkParts asserts Split's promise: every position of a request of n
// blocks in exactly one part, with its block.
func checkParts(n int, blocks []uint32, parts []Part) error {
	seen := make([]bool, n)
	for _, p := range parts {
		if err := invariants.Check(len(p.Positions) == len(p.Blocks), "part of shard %d: %d positions, %d blocks", p.Shard, len(p.Positions), len(p.Blocks)); err != nil {
			return err
		}
		for i, at := range p.Positions {
			if err := invariants.Check(at >= 0 && at < n && !seen[at] && blocks[at] == p.Blocks[i], "split: position %d repeated, out of range or with the wrong block", at); err != nil {
				return err
			}
			seen[at] = true
		}
	}
	for at, s := range seen {
		if err := invariants.Check(s, "split: position %d in no part", at); err != nil {
			return err
		}
	}
	return nil
}
