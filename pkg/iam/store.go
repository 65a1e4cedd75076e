package iam

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/berth-dev/berth/pkg/api"
)

// Credentials are one role's temporary credentials as ACS delivers them.
type Credentials struct {
	// ID is the credentialsId: the secret a container presents to fetch them.
	ID              string
	RoleArn         string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Expiration is echoed as received (ECS agents do not reparse it).
	Expiration string
	// RoleType is api.RoleTypeTaskApplication or api.RoleTypeTaskExecution.
	RoleType string
}

// String hides the secret parts so that Credentials can be logged.
func (c Credentials) String() string {
	return "Credentials{role=" + c.RoleArn + " type=" + c.RoleType + " key=" + c.AccessKeyID + " exp=" + c.Expiration + "}"
}

// FromAPI converts credentials from a PayloadMessage or an
// IAMRoleCredentialsMessage. roleType names which of the task's roles they are.
func FromAPI(roleType string, c *api.IAMRoleCredentials) Credentials {
	if c == nil {
		return Credentials{RoleType: roleType}
	}
	return Credentials{
		ID:              c.CredentialsID,
		RoleArn:         c.RoleArn,
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expiration:      c.Expiration,
		RoleType:        roleType,
	}
}

// Entry is what the store knows about one credentials id.
type Entry struct {
	// TaskArn owns the credentials.
	TaskArn string
	// Credentials are zero apart from ID and RoleType while Initialized is
	// false: the id is known (restored after an agent restart) but ACS has
	// not resent the credentials yet.
	Credentials Credentials
	Initialized bool
}

// Store holds credentials in memory only, by credentials id. Nothing in it
// is ever written to disk: after a restart the agent calls Expect for the
// ids it remembers and the endpoint's resend fills them in.
type Store struct {
	mu sync.RWMutex
	// guarded by mu
	byID map[string]Entry
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{byID: make(map[string]Entry)}
}

// Set stores credentials for a task, replacing earlier credentials with the
// same id (a refresh) and any other id the task had for the same role type.
func (s *Store) Set(taskArn string, c Credentials) {
	if c.ID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.byID {
		if id != c.ID && e.TaskArn == taskArn && e.Credentials.RoleType == c.RoleType {
			delete(s.byID, id)
		}
	}
	s.byID[c.ID] = Entry{TaskArn: taskArn, Credentials: c, Initialized: true}
}

// Expect records that id belongs to taskArn without credentials: requests
// for it get 503 CredentialsUninitialized until Set delivers them. An id
// that already has credentials is left alone.
func (s *Store) Expect(taskArn, roleType, id string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; ok {
		return
	}
	s.byID[id] = Entry{TaskArn: taskArn, Credentials: Credentials{ID: id, RoleType: roleType}}
}

// Get returns the entry for id.
func (s *Store) Get(id string) (Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byID[id]
	return e, ok
}

// TaskCredentials returns the credentials of one role type of a task (for
// registry authentication with the execution role).
func (s *Store) TaskCredentials(taskArn, roleType string) (Credentials, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.byID {
		if e.TaskArn == taskArn && e.Credentials.RoleType == roleType && e.Initialized {
			return e.Credentials, true
		}
	}
	return Credentials{}, false
}

// RemoveTask forgets every credentials id of a task; called once the task
// has stopped so that its ids stop working.
func (s *Store) RemoveTask(taskArn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.byID {
		if e.TaskArn == taskArn {
			delete(s.byID, id)
		}
	}
}

// Len returns how many ids the store holds.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// SetTask stores the role and execution role credentials a PayloadMessage
// carries for a task (either may be absent).
func (s *Store) SetTask(t *api.Task) {
	if t == nil {
		return
	}
	if t.RoleCredentials != nil {
		s.Set(t.Arn, FromAPI(api.RoleTypeTaskApplication, t.RoleCredentials))
	}
	if t.ExecutionRoleCredentials != nil {
		s.Set(t.Arn, FromAPI(api.RoleTypeTaskExecution, t.ExecutionRoleCredentials))
	}
}

// ApplyRefresh stores the credentials of an IAMRoleCredentialsMessage and
// returns the acknowledgement to send back on the ACS session.
func (s *Store) ApplyRefresh(m *api.IAMRoleCredentialsMessage) (*api.IAMRoleCredentialsAckRequest, error) {
	if m == nil || m.RoleCredentials == nil || m.RoleCredentials.CredentialsID == "" || m.TaskArn == "" {
		return nil, errors.New("credentials refresh without task or credentials id")
	}
	roleType := m.RoleType
	if roleType == "" {
		roleType = api.RoleTypeTaskApplication
	}
	s.Set(m.TaskArn, FromAPI(roleType, m.RoleCredentials))
	return &api.IAMRoleCredentialsAckRequest{
		MessageID:     m.MessageID,
		Expiration:    m.RoleCredentials.Expiration,
		CredentialsID: m.RoleCredentials.CredentialsID,
	}, nil
}

// NewID returns a random version 4 UUID, the form of ECS credentials ids
// and of the per-container metadata ids.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// Prune forgets the ids of every task for which keep returns false (the
// agent passes "the engine still runs it"), so that a stopped task's ids
// stop working without a per-task stop hook.
func (s *Store) Prune(keep func(taskArn string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, e := range s.byID {
		if !keep(e.TaskArn) {
			delete(s.byID, id)
			n++
		}
	}
	return n
}
