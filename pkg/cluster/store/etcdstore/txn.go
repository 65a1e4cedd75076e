package etcdstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// scanPage is how many records one range request of a Scan returns.
const scanPage = 256

// txn is one transaction: reads at one revision, buffered writes.
type txn struct {
	s        *Store
	writable bool
	// rev is the snapshot's revision, set by the first read.
	rev int64
	// compacted is set when a read failed because rev was compacted; the
	// transaction then runs anew.
	compacted bool
	// serializable reads come from one member without asking for a quorum
	// (View while etcd has none); unavailable is set when a read failed
	// for want of one; timeout bounds the first read.
	serializable bool
	unavailable  bool
	timeout      time.Duration

	// What an Update read, for the commit's comparisons.
	gets  map[string]getRead // by full key
	scans []scanRead
	// writes are the buffered Puts (value) and Deletes (nil), by full key.
	writes map[string]*write
}

type getRead struct {
	bucket store.Bucket
	modRev int64 // 0: the key was missing
}

type scanRead struct {
	bucket     store.Bucket
	start, end string
}

type write struct {
	bucket store.Bucket
	value  []byte // nil: delete
}

var _ store.Tx = (*txn)(nil)

// read runs one range request at the snapshot's revision, fixing that
// revision on the first.
func (t *txn) read(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	timeout := t.s.o.RequestTimeout
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	} else if t.timeout > 0 {
		timeout = t.timeout
	}
	if t.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	ctx, cancel := t.s.requestWithin(timeout)
	defer cancel()
	resp, err := t.s.cli.Get(ctx, key, opts...)
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			t.compacted = true
		}
		err = mapReqErr(ctx, err)
		if errors.Is(err, store.ErrUnavailable) {
			t.unavailable = true
		}
		return nil, err
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *txn) Get(b store.Bucket, key string, v any) error {
	full := t.s.bucketPrefix(b) + key
	var raw []byte
	if w, ok := t.writes[full]; ok {
		if w.value == nil {
			return store.ErrNotFound
		}
		raw = w.value
	} else {
		resp, err := t.read(full)
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", b, key, err)
		}
		var mod int64
		if len(resp.Kvs) > 0 {
			raw, mod = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		if t.writable {
			if t.gets == nil {
				t.gets = map[string]getRead{}
			}
			t.gets[full] = getRead{bucket: b, modRev: mod}
		}
		if raw == nil {
			return store.ErrNotFound
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", b, key, err)
	}
	return nil
}

func (t *txn) put(b store.Bucket, key string, value []byte) error {
	if !t.writable {
		return fmt.Errorf("write %s/%s: read-only transaction", b, key)
	}
	if t.writes == nil {
		t.writes = map[string]*write{}
	}
	t.writes[t.s.bucketPrefix(b)+key] = &write{bucket: b, value: value}
	return nil
}

func (t *txn) Put(b store.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", b, key, err)
	}
	return t.put(b, key, raw)
}

func (t *txn) Delete(b store.Bucket, key string) error {
	return t.put(b, key, nil)
}

// scanBounds returns the full-key range [start, end) a Scan of r visits.
func (t *txn) scanBounds(b store.Bucket, r store.Range) (start, end string) {
	bp := t.s.bucketPrefix(b)
	start = bp + r.Prefix
	end = prefixEnd(start)
	if r.From == "" {
		return start, end
	}
	from := bp + r.From
	if r.Reverse {
		if from < end {
			end = from
		}
	} else if from > start {
		start = from
	}
	return start, end
}

func (t *txn) Scan(b store.Bucket, r store.Range, fn func(key string, raw []byte) error) error {
	start, end := t.scanBounds(b, r)
	if t.writable {
		t.scans = append(t.scans, scanRead{bucket: b, start: start, end: end})
	}
	trim := len(t.s.bucketPrefix(b))
	own := t.ownWrites(start, end)
	if len(own) == 0 {
		err := t.pages(start, end, r.Reverse, func(kv *mvccpb.KeyValue) error {
			return fn(string(kv.Key[trim:]), kv.Value)
		})
		if errors.Is(err, store.ErrStopScan) {
			return nil
		}
		return err
	}
	// The transaction wrote in the range: merge its writes into what etcd
	// holds, so that it reads its own writes as bbolt does.
	merged := map[string][]byte{}
	if err := t.pages(start, end, r.Reverse, func(kv *mvccpb.KeyValue) error {
		merged[string(kv.Key)] = kv.Value
		return nil
	}); err != nil {
		return err
	}
	for _, k := range own {
		if v := t.writes[k].value; v != nil {
			merged[k] = v
		} else {
			delete(merged, k)
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if r.Reverse {
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			keys[i], keys[j] = keys[j], keys[i]
		}
	}
	for _, k := range keys {
		if err := fn(k[trim:], merged[k]); err != nil {
			if errors.Is(err, store.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ownWrites returns the keys this transaction wrote in [start, end).
func (t *txn) ownWrites(start, end string) []string {
	var out []string
	for k := range t.writes {
		if k >= start && k < end {
			out = append(out, k)
		}
	}
	return out
}

// pages calls fn for every key in [start, end) at the snapshot, in key
// order (descending when reverse), a page of range requests at a time.
func (t *txn) pages(start, end string, reverse bool, fn func(*mvccpb.KeyValue) error) error {
	order := clientv3.SortAscend
	if reverse {
		order = clientv3.SortDescend
	}
	for {
		resp, err := t.read(start, clientv3.WithRange(end), clientv3.WithLimit(scanPage),
			clientv3.WithSort(clientv3.SortByKey, order))
		if err != nil {
			return fmt.Errorf("scan %q: %w", strings.TrimPrefix(start, t.s.prefix), err)
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		if reverse {
			end = last
		} else {
			start = last + "\x00"
		}
	}
}

// commit sends the writes in one etcd Txn guarded by the comparisons of
// what the transaction read. ok is false when another writer changed any
// of it first (nothing was written).
func (t *txn) commit() (ok bool, err error) {
	if len(t.writes) == 0 {
		// Nothing to write: the snapshot read is already serializable.
		return true, nil
	}
	ops := t.ops()
	if len(ops) > t.s.o.MaxTxnOps {
		return false, fmt.Errorf("etcd store: %d writes in one transaction, etcd allows %d (max_txn_ops; raise the members' --max-txn-ops and max_txn_ops together): %w",
			len(ops), t.s.o.MaxTxnOps, ErrTxnTooLarge)
	}
	ctx, cancel := t.s.request()
	defer cancel()
	resp, err := t.s.cli.Txn(ctx).If(t.cmps()...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd store: commit %d writes: %w", len(ops), mapReqErr(ctx, err))
	}
	return resp.Succeeded, nil
}

// ops are the writes, in key order, plus the deletion marker of every
// bucket the transaction deletes in.
func (t *txn) ops() []clientv3.Op {
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ops []clientv3.Op
	marked := map[store.Bucket]bool{}
	for _, k := range keys {
		w := t.writes[k]
		if w.value != nil {
			ops = append(ops, clientv3.OpPut(k, string(w.value)))
			continue
		}
		ops = append(ops, clientv3.OpDelete(k))
		if !marked[w.bucket] {
			marked[w.bucket] = true
			ops = append(ops, clientv3.OpPut(t.s.deletedMarker(w.bucket), ""))
		}
	}
	return ops
}

// cmps are the comparisons that hold only if nothing the transaction read
// was written since its snapshot. When there are more than etcd allows,
// the records got in the buckets with the most of them are compared as a
// whole bucket instead (a range comparison and the deletion marker).
func (t *txn) cmps() []clientv3.Cmp {
	if t.rev == 0 {
		return nil // nothing was read: blind writes
	}
	wholeBucket := map[store.Bucket]bool{}
	perBucket := map[store.Bucket]int{}
	for _, g := range t.gets {
		perBucket[g.bucket]++
	}
	for {
		n := len(t.scans) + len(t.gets)
		marked := map[store.Bucket]bool{}
		for _, sc := range t.scans {
			marked[sc.bucket] = true
		}
		for b := range wholeBucket {
			marked[b] = true
			n += 1 - perBucket[b]
		}
		n += len(marked)
		if n <= t.s.o.MaxTxnOps || len(perBucket) == len(wholeBucket) {
			break
		}
		var most store.Bucket
		for b, c := range perBucket {
			if !wholeBucket[b] && (most == "" || c > perBucket[most]) {
				most = b
			}
		}
		wholeBucket[most] = true
	}
	var cmps []clientv3.Cmp
	marked := map[store.Bucket]bool{}
	mark := func(b store.Bucket) {
		if !marked[b] {
			marked[b] = true
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.s.deletedMarker(b)), "<", t.rev+1))
		}
	}
	rangeCmp := func(start, end string) clientv3.Cmp {
		return clientv3.Compare(clientv3.ModRevision(start), "<", t.rev+1).WithRange(end)
	}
	for _, sc := range t.scans {
		cmps = append(cmps, rangeCmp(sc.start, sc.end))
		mark(sc.bucket)
	}
	for b := range wholeBucket {
		bp := t.s.bucketPrefix(b)
		cmps = append(cmps, rangeCmp(bp, prefixEnd(bp)))
		mark(b)
	}
	for k, g := range t.gets {
		if !wholeBucket[g.bucket] {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", g.modRev))
		}
	}
	return cmps
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix (which is never empty nor all 0xff bytes here).
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return string(clientv3.GetPrefixRangeEnd(prefix))
}
