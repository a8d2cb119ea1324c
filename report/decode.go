package report

import (
	"encoding/json"
	"time"

	"github.com/tdsproxy/tdsproxy/record"
)

// slimLine is a log line as the report decodes it: the record's fields it
// uses, with the two large sections that repeat from connection to
// connection (the TLS summary, identical for one client library against
// one server, and PRELOGIN) kept raw and decoded once per distinct text
// (sectionCache). Fields of record.Record left out here (Listener,
// Upstream, bytes, Watching, ParseIssues, Notes, Dropped, Bridge) are not
// read by the report or by package diagnose; TestSlimCoversRecord keeps
// this list honest when Record grows.
type slimLine struct {
	Msg    string      `json:"msg"`
	Record *slimRecord `json:"record"`
}

type slimRecord struct {
	ID        uint64              `json:"id"`
	Proxy     string              `json:"proxy"`
	Client    string              `json:"client"`
	Start     time.Time           `json:"start"`
	End       time.Time           `json:"end"`
	Protocol  record.Protocol     `json:"protocol"`
	Phase     record.Phase        `json:"phase"`
	Phases    []record.PhaseMark  `json:"phases"`
	Prelogin  json.RawMessage     `json:"prelogin"`
	TLS       json.RawMessage     `json:"tls"`
	Login     *record.LoginInfo   `json:"login"`
	Close     *record.CloseInfo   `json:"close"`
	Faults    []record.FaultEvent `json:"faults"`
	Diagnosis []record.Finding    `json:"diagnosis"`
	Steps     []record.Step       `json:"steps"`
}

// slimSkipped lists the record fields slimRecord does not decode.
var slimSkipped = []string{"listener", "upstream", "bridge", "bytes_client_to_server", "bytes_server_to_client",
	"watching", "parse_issues", "notes", "dropped_entries", "retry"}

// maxCached bounds each section cache: past it the cache starts over, so
// a log with ever-changing sections costs decoding, not memory.
const maxCached = 4096

// sectionCache decodes repeated sections once. One per worker: no locks.
// Records share the decoded values, which nothing modifies.
type sectionCache struct {
	tls      map[string]*record.TLSInfo
	prelogin map[string]*record.PreloginInfo
}

func newSectionCache() *sectionCache {
	return &sectionCache{tls: map[string]*record.TLSInfo{}, prelogin: map[string]*record.PreloginInfo{}}
}

// cached decodes raw into a new *T, or returns the one decoded from the
// same text before.
func cached[T any](m map[string]*T, raw json.RawMessage) (*T, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if v, ok := m[string(raw)]; ok { // no allocation for the lookup
		return v, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, err
	}
	if len(m) >= maxCached {
		clear(m)
	}
	m[string(raw)] = v
	return v, nil
}

// decodeLine decodes one log line: ok false when it is JSON but not a
// connection record (msg tells which).
func (c *sectionCache) decodeLine(line []byte) (rec *record.Record, msg string, err error) {
	var l slimLine
	if err := json.Unmarshal(line, &l); err != nil {
		return nil, "", err
	}
	if l.Record == nil {
		return nil, l.Msg, nil
	}
	s := l.Record
	r := &record.Record{
		ID: s.ID, Proxy: s.Proxy, Client: s.Client, Start: s.Start, End: s.End,
		Protocol: s.Protocol, Phase: s.Phase, Phases: s.Phases,
		Login: s.Login, Close: s.Close, Faults: s.Faults, Diagnosis: s.Diagnosis, Steps: s.Steps,
	}
	if r.TLS, err = cached(c.tls, s.TLS); err != nil {
		return nil, "", err
	}
	if r.Prelogin, err = cached(c.prelogin, s.Prelogin); err != nil {
		return nil, "", err
	}
	return r, l.Msg, nil
}
