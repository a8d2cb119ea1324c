package control_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/control"
	wire "github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/faults"
)

// jsonKeys lists a struct type's JSON keys with their value kinds, walking
// into nested structs, slices and pointers: "match.window.every:int64".
func jsonKeys(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		*out = append(*out, prefix+name+":"+ft.Kind().String())
		jsonKeys(f.Type, prefix+name+".", out)
	}
}

// api.Rule is faults.RuleSpec's JSON, field for field: the same keys with
// the same kinds, and a rule with every field set reads back unchanged
// through the API type (and through control.APIRule).
func TestRuleMatchesRuleSpec(t *testing.T) {
	var a, b []string
	jsonKeys(reflect.TypeFor[faults.RuleSpec](), "", &a)
	jsonKeys(reflect.TypeFor[wire.Rule](), "", &b)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatalf("faults.RuleSpec keys %v\napi.Rule keys %v", a, b)
	}
	p := 0.25
	spec := faults.RuleSpec{Name: "n", Scenario: "s", Action: "a", Direction: "d", Phase: "p",
		Options: faults.OptionValues{"k": "v"}, Close: "fin", Seed: 7,
		Match: faults.Match{Clients: []string{"127.0.0.1"}, Instance: "i", SNI: "h", Protocol: "tds7", Probability: &p,
			First: 1, Every: 2, Window: &faults.Window{Every: faults.Duration(time.Minute), For: faults.Duration(time.Second)}}}
	want, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var r wire.Rule
	if err := json.Unmarshal(want, &r); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]wire.Rule{"decoded": r, "APIRule": control.APIRule(spec)} {
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	back, err := faults.ParseRuleSpec(want)
	if err != nil || !reflect.DeepEqual(back, spec) {
		t.Errorf("ParseRuleSpec of the API's JSON = %+v, %v", back, err)
	}
}
