package state

import (
	"encoding/json"
	"fmt"

	"github.com/berth-dev/berth/pkg/container"
)

// The ports bucket holds one container.PortAllocation per host port, as its
// JSON ({"owner","protocol","hostPort"}) under the key "<protocol>/%05d".

func portKey(protocol string, port uint16) []byte {
	return fmt.Appendf(nil, "%s/%05d", protocol, port)
}

// PutPortAllocation records one allocation, replacing any record of the
// same protocol and port.
func (tx *Tx) PutPortAllocation(a container.PortAllocation) error {
	if a.Protocol == "" || a.HostPort == 0 {
		return fmt.Errorf("put port allocation %+v: protocol and port are required", a)
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put port allocation: %w", err)
	}
	if err := tx.bucket(bucketPorts).Put(portKey(a.Protocol, a.HostPort), v); err != nil {
		return fmt.Errorf("put port allocation %s/%d: %w", a.Protocol, a.HostPort, err)
	}
	return nil
}

// DeletePortAllocation removes the record of one port; a missing record is
// not an error.
func (tx *Tx) DeletePortAllocation(protocol string, port uint16) error {
	if err := tx.bucket(bucketPorts).Delete(portKey(protocol, port)); err != nil {
		return fmt.Errorf("delete port allocation %s/%d: %w", protocol, port, err)
	}
	return nil
}

// PortAllocations returns every allocation, ordered by protocol and port.
func (tx *Tx) PortAllocations() ([]container.PortAllocation, error) {
	var out []container.PortAllocation
	err := tx.bucket(bucketPorts).ForEach(func(k, v []byte) error {
		var a container.PortAllocation
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("port allocation %s: %w", k, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list port allocations: %w", err)
	}
	return out, nil
}

// ReplacePortAllocations makes the stored set exactly allocs (the
// PortStore.SavePorts contract of pkg/network).
func (tx *Tx) ReplacePortAllocations(allocs []container.PortAllocation) error {
	b := tx.bucket(bucketPorts)
	var keys [][]byte
	if err := b.ForEach(func(k, _ []byte) error { keys = append(keys, clone(k)); return nil }); err != nil {
		return fmt.Errorf("replace port allocations: %w", err)
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("replace port allocations: %w", err)
		}
	}
	for _, a := range allocs {
		if err := tx.PutPortAllocation(a); err != nil {
			return err
		}
	}
	return nil
}

// LoadPorts returns every stored port allocation. With SavePorts it makes
// *DB pkg/network's PortStore as it is (the agent hands the database to the
// port allocator).
func (db *DB) LoadPorts() ([]container.PortAllocation, error) {
	var out []container.PortAllocation
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = tx.PortAllocations()
		return err
	})
	return out, err
}

// SavePorts replaces the stored port allocations with allocs in one
// transaction.
func (db *DB) SavePorts(allocs []container.PortAllocation) error {
	return db.Update(func(tx *Tx) error { return tx.ReplacePortAllocations(allocs) })
}
