package pageserver

import (
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// baseBackupStream is the server side of a GetBaseBackup call.
type baseBackupStream = net.ServerStreamOf[*pageapi.GetBaseBackupRequest, *pageapi.GetBaseBackupResponseChunk]

// getBaseBackup streams a base backup of the timeline at an LSN: the
// Strata archive of pageapi.NewBaseBackupWriter (docs/pageserver.md, "Base
// backup"), optionally gzipped, in chunks of pageapi.BaseBackupChunkBytes.
// Shard 0 only. The call counts against MaxStreams and is a task of its
// timeline, so shutting the timeline down ends it.
func (ps *PageService) getBaseBackup(ctx context.Context, st *baseBackupStream) error {
	const method = "GetBaseBackup"
	if !ps.streams.TryAcquire(1) {
		ps.count(method, net.ResourceExhausted)
		return net.Errorf(net.ResourceExhausted, "pageserver: %d page service streams open, limit %d", ps.cfg.MaxStreams, ps.cfg.MaxStreams)
	}
	defer ps.streams.Release(1)
	err := StatusOf(ps.baseBackup(ctx, st))
	ps.count(method, net.CodeOf(err))
	return err
}

func (ps *PageService) baseBackup(ctx context.Context, st *baseBackupStream) error {
	target, tl, err := ps.openShard0(ctx, "GetBaseBackup")
	if err != nil {
		return err
	}
	ctx, done := ps.tasks.register(ctx, taskPageStream, timelineScope(target.Shard, target.Timeline), "GetBaseBackup "+target.Shard.String())
	defer done()
	req, err := st.Recv()
	if err == io.EOF {
		return fmt.Errorf("%w: no GetBaseBackupRequest before the end of the stream", ErrBadRequest)
	}
	if err != nil {
		return err
	}
	switch req.Compression {
	case pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE, pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP:
	default:
		return fmt.Errorf("%w: compression %v (want NONE or GZIP)", ErrBadRequest, req.Compression)
	}
	if _, routed := tl.(*routedTimeline); req.Full && (tl.Shard().Count >= 2 || routed) {
		return fmt.Errorf("%w: a full base backup holds every relation block, and shard %s holds only its own", ErrBadRequest, tl.Shard().Index())
	}
	var at lsn.LSN
	if req.Lsn == 0 {
		if at = tl.LastRecordLSN(); at == lsn.Invalid {
			return fmt.Errorf("%w: lsn 0 (the latest) on a timeline with nothing ingested", ErrBadRequest)
		}
	} else if at, err = ps.readLSN(ctx, tl, &pageapi.ReadLsn{RequestLsn: req.Lsn}); err != nil {
		return err
	}
	sc, err := tl.Scan(keys.Range{Start: keys.Min, End: keys.Max}, at)
	if err != nil {
		return err
	}
	defer sc.Close()

	cw := &chunkWriter{buf: make([]byte, 0, pageapi.BaseBackupChunkBytes), send: func(b []byte) error {
		return st.Send(&pageapi.GetBaseBackupResponseChunk{Chunk: b})
	}}
	var out io.Writer = cw
	var gz *gzip.Writer
	if req.Compression == pageapi.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP {
		gz = gzip.NewWriter(cw)
		out = gz
	}
	bw, err := pageapi.NewBaseBackupWriter(out, pageapi.BaseBackupManifest{
		LSN: at, TenantShardID: target.Shard.String(), TimelineID: target.Timeline.String(), Full: req.Full, Replica: req.Replica,
	})
	if err != nil {
		return err
	}
	for i := 0; sc.Next(); i++ {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := sc.Key()
		if !req.Full && k.IsRelBlock() {
			// Relation data is read page by page (GetPages): skip the
			// relation's blocks, straight to its size key.
			rel, _ := k.ToRelTag()
			sc.Seek(keys.RelSizeKey(rel))
			continue
		}
		if err := bw.Add(k, sc.Value()); err != nil {
			return fmt.Errorf("base backup at %s: %w", at, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("base backup at %s: %w", at, err)
	}
	tr, err := bw.Close()
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err == nil {
		err = cw.flush()
	}
	if err != nil {
		return err
	}
	ps.log.Info("base backup sent", "tenant_shard_id", target.Shard, "timeline_id", target.Timeline, "lsn", at,
		"keys", tr.Keys, "value_bytes", tr.ValueBytes, "bytes", cw.sent, "chunks", cw.chunks, "compression", req.Compression)
	return nil
}

// chunkWriter sends what is written to it in chunks of exactly its
// buffer's capacity (the last, at flush, may be shorter), so a base backup
// holds at most one chunk in memory whatever its size.
type chunkWriter struct {
	buf    []byte
	send   func([]byte) error // must not keep its argument
	sent   int64
	chunks int
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends what is buffered, if anything.
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.send(w.buf); err != nil {
		return err
	}
	w.sent += int64(len(w.buf))
	w.chunks++
	w.buf = w.buf[:0]
	return nil
}
