package cluster

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/etcdstore"
)

// writeState writes st into the store at loc, replacing what it holds
// when replace is set, and checks the result.
func writeState(ctx context.Context, loc StoreLocation, st *state, replace bool) error {
	db, kek, err := openLocation(ctx, loc, true)
	if err != nil {
		return err
	}
	defer db.Close()
	batch := 1 << 30 // bbolt: one transaction
	if es, ok := db.(*etcdstore.Store); ok {
		live, err := es.Replicas()
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return fmt.Errorf("replicas %v are serving this prefix: stop them first (restore and migrate are offline)", live)
		}
		// Blind writes: no comparisons; a delete also rewrites its
		// bucket's marker.
		batch = max(1, es.MaxTxnOps()-len(Buckets())-1)
	}
	buckets := backupBuckets()
	if kek != nil {
		buckets = append(buckets, sharedKeysBucket)
	}
	held, err := countRecords(db, buckets)
	if err != nil {
		return err
	}
	if held.Total() > 0 {
		if !replace {
			return fmt.Errorf("%w: it holds %d records (%s); --force replaces them", ErrStoreNotEmpty, held.Total(), held)
		}
		if err := clearBuckets(db, buckets, batch); err != nil {
			return err
		}
	}
	want := map[store.Bucket][]record{}
	for b, rs := range st.records {
		if b == records.Instances {
			var err error
			if rs, err = disconnected(rs); err != nil {
				return err
			}
		}
		want[b] = rs
	}
	if err := putRecords(db, want, batch); err != nil {
		return err
	}
	if err := writeKeys(db, kek, loc, st.keys, replace); err != nil {
		return err
	}
	return verify(db, want)
}

func countRecords(db store.Store, buckets []store.Bucket) (Counts, error) {
	c := Counts{}
	err := db.View(func(tx store.Tx) error {
		for _, b := range buckets {
			c[b] = 0
			if err := store.ForEach(tx, b, "", func(string, []byte) error { c[b]++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return c, err
}

func clearBuckets(db store.Store, buckets []store.Bucket, batch int) error {
	for _, b := range buckets {
		var keys []string
		if err := db.View(func(tx store.Tx) error {
			keys = nil
			return store.ForEach(tx, b, "", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		}); err != nil {
			return err
		}
		for len(keys) > 0 {
			n := min(batch, len(keys))
			chunk := keys[:n]
			keys = keys[n:]
			if err := db.Update(func(tx store.Tx) error {
				for _, k := range chunk {
					if err := tx.Delete(b, k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("clear %s: %w", b, err)
			}
		}
	}
	return nil
}

// rawValue is a record already encoded; Put stores it as it is.
type rawValue json.RawMessage

func putRecords(db store.Store, want map[store.Bucket][]record, batch int) error {
	type item struct {
		b store.Bucket
		r record
	}
	var all []item
	for b, rs := range want {
		for _, r := range rs {
			all = append(all, item{b, r})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].b != all[j].b {
			return all[i].b < all[j].b
		}
		return all[i].r.Key < all[j].r.Key
	})
	for len(all) > 0 {
		n := min(batch, len(all))
		chunk := all[:n]
		all = all[n:]
		if err := db.Update(func(tx store.Tx) error {
			for _, it := range chunk {
				if err := tx.Put(it.b, it.r.Key, rawValue(it.r.Value)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	return nil
}

// disconnected clears agentConnected in instance records: no agent holds a
// session with the destination yet.
func disconnected(rs []record) ([]record, error) {
	out := make([]record, 0, len(rs))
	for _, r := range rs {
		var in records.Instance
		if err := json.Unmarshal(r.Value, &in); err != nil {
			return nil, fmt.Errorf("instance %s: %w", r.Key, err)
		}
		in.Instance.AgentConnected = false
		raw, err := json.Marshal(&in)
		if err != nil {
			return nil, err
		}
		out = append(out, record{Key: r.Key, Value: raw})
	}
	return out, nil
}

// writeKeys stores the keys: sealed under the KEK in etcd, as the data
// directory's files for bbolt (an existing file that differs is replaced
// only with replace).
func writeKeys(db store.Store, kek cipher.AEAD, loc StoreLocation, keys map[string][]byte, replace bool) error {
	if kek != nil {
		return db.Update(func(tx store.Tx) error {
			for name, key := range keys {
				sk, err := seal(kek, name, key)
				if err != nil {
					return err
				}
				if err := tx.Put(sharedKeysBucket, name, sk); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for name, file := range map[string]string{"master": auth.MasterKeyFile, "credentials-id": roles.IDKeyFile} {
		key, ok := keys[name]
		if !ok {
			continue
		}
		path := filepath.Join(loc.DataDir, file)
		if old, err := os.ReadFile(path); err == nil && !bytes.Equal(old, key) && !replace {
			return fmt.Errorf("%w: %s holds another key; --force replaces it", ErrStoreNotEmpty, path)
		}
		if err := writeFileAtomic(path, key); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes a 0600 file through a temporary file and rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// verify reads the buckets back and checks that they hold exactly want.
func verify(db store.Store, want map[store.Bucket][]record) error {
	return db.View(func(tx store.Tx) error {
		for _, b := range backupBuckets() {
			rs := want[b]
			i := 0
			if err := store.ForEach(tx, b, "", func(k string, raw []byte) error {
				if i >= len(rs) || rs[i].Key != k || !bytes.Equal(rs[i].Value, raw) {
					return fmt.Errorf("verify %s: record %q differs from the source", b, k)
				}
				i++
				return nil
			}); err != nil {
				return err
			}
			if i != len(rs) {
				return fmt.Errorf("verify %s: %d records written, %d read back", b, len(rs), i)
			}
		}
		return nil
	})
}
