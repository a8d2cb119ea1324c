package testkit

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers are the import layers of docs/architecture.md ("Imports point one
// way"): a package imports only from layers below its own.
var layers = map[string]int{
	"tds": 0, "record": 0,
	"tlsbridge":     1,
	"tlsbridge/dhe": 2,
	"proxy":         3, "internal/emulator": 3, "control/api": 3,
	"faults": 4, "control/client": 4,
	"configs": 5, "diagnose": 5, "probe": 5,
	"control": 6, "report": 6,
	"cmd/tdsproxy": 7,
}

const module = "github.com/tdsproxy/tdsproxy/"

// TestImportLayers keeps the import arrows of docs/architecture.md one way:
// every non-test import between the packages listed there goes down.
func TestImportLayers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for pkg, layer := range layers {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Errorf("%s: no Go files (%v)", pkg, err)
			continue
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(path, module)
				if !ok {
					continue
				}
				if dl, listed := layers[dep]; listed && dl >= layer {
					t.Errorf("%s (layer %d) imports %s (layer %d): arrows must point down (docs/architecture.md)",
						strings.TrimPrefix(f, root+"/"), layer, dep, dl)
				}
			}
		}
	}
}
