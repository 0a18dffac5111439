package detlint

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"maps"
	"reflect"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// Module is the import path of the module whose engine/ and nodes/ trees the
// analyzer checks.
const Module = "github.com/stratadb/strata"

// Directive is the escape-hatch comment prefix. It must be followed by a
// space and a non-empty reason.
const Directive = "//strata:nondeterministic"

// Analyzer reports nondeterministic constructs in engine/ and nodes/.
// Its Result is a *Result.
var Analyzer = &analysis.Analyzer{
	Name:       "detlint",
	Doc:        "reports constructs that break deterministic simulation in Strata's engine/ and nodes/ packages",
	URL:        "https://github.com/stratadb/strata/blob/main/docs/architecture.md#determinism-rules",
	Run:        run,
	ResultType: reflect.TypeOf((*Result)(nil)),
}

// Result is what one run of the Analyzer over a package returns.
type Result struct {
	// InScope reports whether the package was checked at all.
	InScope bool
	// Escapes lists every well-formed escape comment (with a reason) in the
	// package's files, in file order.
	Escapes []Escape
}

// Escape is one `//strata:nondeterministic <reason>` comment.
type Escape struct {
	Pos    token.Position
	Reason string
	// Used reports whether the comment suppressed at least one finding.
	Used bool
}

// InScope reports whether the package with the given import path is subject
// to the determinism rules: this module's engine and nodes trees, including
// their external test packages (path suffix _test).
func InScope(pkgPath string) bool {
	for _, root := range []string{Module + "/engine", Module + "/nodes"} {
		if pkgPath == root || strings.HasPrefix(pkgPath, root+"/") {
			return true
		}
	}
	return false
}

// forbiddenFuncs maps "pkgpath.Name" of package-level functions to the
// reason and replacement printed in the finding.
var forbiddenFuncs = map[string]string{
	"time.Now":       "reads the real clock; use clock.Clock.Now or Mono",
	"time.Since":     "reads the real clock; use clock.Clock.Mono differences",
	"time.Until":     "reads the real clock; use clock.Clock.Mono differences",
	"time.Sleep":     "sleeps in real time; use the clock package's Sleep",
	"time.After":     "arms a real timer; use the clock package's timers",
	"time.AfterFunc": "arms a real timer; use clock.Clock.AfterFunc",
	"time.NewTimer":  "arms a real timer; use the clock package's timers",
	"time.NewTicker": "arms a real timer; use the clock package's timers",
	"time.Tick":      "arms a real timer; use the clock package's timers",

	"context.WithTimeout":       "arms a real timer; use the clock package's WithTimeout",
	"context.WithTimeoutCause":  "arms a real timer; use the clock package's WithTimeout",
	"context.WithDeadline":      "arms a real timer; use the clock package's WithDeadline",
	"context.WithDeadlineCause": "arms a real timer; use the clock package's WithDeadline",
	"context.WithCancel":        "may spawn a goroutine to propagate cancellation; use the clock package's WithCancel",
	"context.WithCancelCause":   "may spawn a goroutine to propagate cancellation; use the clock package's WithCancel",
	"context.AfterFunc":         "runs its function on a new goroutine; use the clock package's primitives",
}

// forbiddenMethods maps "(recv).Name" method full names to a reason.
var forbiddenMethods = map[string]string{
	"(*sync.WaitGroup).Go": "starts a goroutine; use clock.Clock.Go and the clock package's WaitGroup",
}

// forbiddenPkgs maps import paths whose every use is forbidden to the seam
// that replaces them.
var forbiddenPkgs = map[string]string{
	"crypto/rand": "is a global random source; use node.Env.Rand",
	"os":          "reaches the host; use disk.FS and node.Env",
	"os/exec":     "reaches the host; not allowed in engine/ or nodes/",
	"os/signal":   "reaches the host; signals are handled in cmd/",
	"net":         "reaches the real network; use the net seam (github.com/stratadb/strata/net)",
	"net/http":    "reaches the real network and spawns goroutines; use the net seam",
	"syscall":     "reaches the host; use disk.FS",
}

// uuidDeterministic lists github.com/google/uuid constructors that derive the
// UUID from their arguments only (name-based or from a caller's reader).
var uuidDeterministic = map[string]bool{
	"NewMD5": true, "NewSHA1": true, "NewHash": true, "NewRandomFromReader": true,
}

// sortingConsumers are the functions that may take maps.Keys/Values/All
// directly, because their result does not depend on iteration order.
var sortingConsumers = map[string]bool{
	"slices.Sorted":           true,
	"slices.SortedFunc":       true,
	"slices.SortedStableFunc": true,
	"maps.Collect":            true,
	"maps.Insert":             true,
}

type finding struct {
	pos token.Pos
	msg string
}

func run(pass *analysis.Pass) (any, error) {
	res := &Result{InScope: InScope(pass.Pkg.Path())}
	if !res.InScope {
		return res, nil
	}
	for _, f := range pass.Files {
		checkFile(pass, f, res)
	}
	return res, nil
}

// escapeComment is one well-formed escape comment in a file.
type escapeComment struct {
	pos token.Pos
	idx int // index into Result.Escapes
}

func checkFile(pass *analysis.Pass, f *ast.File, res *Result) {
	tokFile := pass.Fset.File(f.Pos())
	if tokFile == nil {
		return
	}
	// Collect escape comments by line.
	escapes := map[int]*escapeComment{}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			text := c.Text
			line := tokFile.Line(c.Pos())
			switch {
			case strings.HasPrefix(text, Directive):
				rest := text[len(Directive):]
				if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
					continue // some other word, e.g. //strata:nondeterministicX
				}
				reason := strings.TrimSpace(rest)
				if reason == "" {
					pass.Reportf(c.Pos(), "%s needs a reason after it", Directive)
					continue
				}
				res.Escapes = append(res.Escapes, Escape{Pos: pass.Fset.Position(c.Pos()), Reason: reason})
				escapes[line] = &escapeComment{pos: c.Pos(), idx: len(res.Escapes) - 1}
			case strings.HasPrefix(text, "// strata:nondeterministic"), strings.HasPrefix(text, "/*strata:nondeterministic"):
				pass.Reportf(c.Pos(), "malformed escape comment: write %s <reason> with no space after //", Directive)
			}
		}
	}

	var findings []finding
	report := func(pos token.Pos, format string, args ...any) {
		findings = append(findings, finding{pos: pos, msg: fmt.Sprintf(format, args...)})
	}
	walkFile(pass, f, report)

	for _, fd := range findings {
		line := tokFile.Line(fd.pos)
		if e := escapes[line]; e != nil {
			res.Escapes[e.idx].Used = true
			continue
		}
		if e := escapes[line-1]; e != nil {
			res.Escapes[e.idx].Used = true
			continue
		}
		pass.Report(analysis.Diagnostic{Pos: fd.pos, Message: fd.msg})
	}
	// A stale escape would silently excuse whatever is written on its lines
	// later, and inflate the count reviewers read, so it is a finding too.
	for _, line := range slices.Sorted(maps.Keys(escapes)) {
		e := escapes[line]
		if !res.Escapes[e.idx].Used {
			pass.Reportf(e.pos, "%s comment suppresses no finding on its line or the next: remove it", Directive)
		}
	}
}

func walkFile(pass *analysis.Pass, f *ast.File, report func(token.Pos, string, ...any)) {
	info := pass.TypesInfo

	// Imports of forbidden packages.
	for _, imp := range f.Imports {
		path := strings.Trim(imp.Path.Value, `"`)
		if why, ok := forbiddenPkgs[path]; ok {
			report(imp.Pos(), "import of %s: %s %s", path, path, why)
		}
	}

	// Package-level variables. Generated files (protoc's *.pb.go) are
	// exempt from this rule only: their variables are the protobuf runtime's
	// descriptor and registration tables, filled once at init and never
	// written by Strata code, and an escape comment would not survive
	// regeneration. Every other rule still applies to them.
	decls := f.Decls
	if ast.IsGenerated(f) {
		decls = nil
	}
	for _, decl := range decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name == "_" {
					continue // compile-time assertion such as var _ I = (*T)(nil)
				}
				if isErrorSentinel(info, name, vs, i) {
					continue
				}
				report(name.Pos(), "package-level variable %s is mutable shared state: make it a const, a function or a node field (only errors.New/fmt.Errorf sentinels are allowed)", name.Name)
			}
		}
	}

	// allowedIterCalls holds maps.Keys/Values/All calls that are direct
	// arguments of an order-insensitive consumer. ast.Inspect visits a call
	// before its arguments, so the consumer marks them first.
	allowedIterCalls := map[*ast.CallExpr]bool{}

	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n.Pos(), "go statement: start tasks with clock.Clock.Go so the simulator schedules them")
		case *ast.ChanType:
			report(n.Pos(), "channel type: use clock.Chan so the simulator sees every wait")
		case *ast.SendStmt:
			report(n.Arrow, "channel send: use clock.Chan")
		case *ast.UnaryExpr:
			if n.Op == token.ARROW {
				report(n.OpPos, "channel receive: use clock.Chan")
			}
		case *ast.SelectStmt:
			report(n.Pos(), "select statement: use the clock package's Select")
		case *ast.RangeStmt:
			t := info.TypeOf(n.X)
			switch {
			case isKind[*types.Map](t):
				report(n.For, "range over a map: iteration order is random; range over slices.Sorted(maps.Keys(m)) instead")
			case isKind[*types.Chan](t):
				report(n.For, "range over a channel: use clock.Chan")
			}
		case *ast.CallExpr:
			checkCall(pass, n, allowedIterCalls, report)
		case *ast.Ident:
			checkUse(pass, n, report)
		}
		return true
	})
}

func checkCall(pass *analysis.Pass, call *ast.CallExpr, allowed map[*ast.CallExpr]bool, report func(token.Pos, string, ...any)) {
	info := pass.TypesInfo
	// make(T) or T(x) where T is a named channel type declared elsewhere
	// (a literal chan type is already reported as *ast.ChanType).
	if tv, ok := info.Types[call.Fun]; ok && tv.IsType() {
		if _, lit := ast.Unparen(call.Fun).(*ast.ChanType); !lit && isKind[*types.Chan](tv.Type) {
			report(call.Pos(), "conversion to channel type %s: use clock.Chan", tv.Type)
		}
	}
	if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok {
		if b, ok := info.Uses[id].(*types.Builtin); ok && len(call.Args) > 0 {
			switch b.Name() {
			case "make":
				if _, lit := ast.Unparen(call.Args[0]).(*ast.ChanType); !lit && isKind[*types.Chan](info.TypeOf(call.Args[0])) {
					report(call.Pos(), "make of channel type: use clock.Chan")
				}
			case "close":
				if isKind[*types.Chan](info.TypeOf(call.Args[0])) {
					report(call.Pos(), "close of a channel: use clock.Chan")
				}
			}
		}
	}
	fn := calledFunc(info, call)
	if fn == nil {
		return
	}
	name := funcName(fn)
	if sortingConsumers[name] {
		for _, arg := range call.Args {
			if c, ok := ast.Unparen(arg).(*ast.CallExpr); ok {
				allowed[c] = true
			}
		}
	}
	switch name {
	case "maps.Keys", "maps.Values", "maps.All":
		if !allowed[call] {
			report(call.Pos(), "%s yields in random order: wrap it in slices.Sorted (or SortedFunc) before use", name)
		}
	}
}

// checkUse reports references (calls or function values) to forbidden
// functions, methods and packages.
func checkUse(pass *analysis.Pass, id *ast.Ident, report func(token.Pos, string, ...any)) {
	obj := pass.TypesInfo.Uses[id]
	if obj == nil || obj.Pkg() == nil {
		return
	}
	if _, isPkg := obj.(*types.PkgName); isPkg {
		return // the package name itself; its import is reported once
	}
	path := obj.Pkg().Path()
	if why, ok := forbiddenPkgs[path]; ok && isPackageLevel(obj) {
		report(id.Pos(), "%s.%s: %s %s", path, obj.Name(), path, why)
		return
	}
	fn, ok := obj.(*types.Func)
	if !ok {
		return
	}
	sig := fn.Type().(*types.Signature)
	if sig.Recv() != nil {
		if why, ok := forbiddenMethods[fn.FullName()]; ok {
			report(id.Pos(), "%s %s", fn.FullName(), why)
		}
		return
	}
	name := path + "." + fn.Name()
	if why, ok := forbiddenFuncs[name]; ok {
		report(id.Pos(), "%s %s", name, why)
		return
	}
	switch path {
	case "math/rand", "math/rand/v2":
		if !strings.HasPrefix(fn.Name(), "New") {
			report(id.Pos(), "%s uses the global random source; draw from a seeded *rand.Rand (node.Env.Rand)", name)
		}
	case "github.com/google/uuid":
		if strings.HasPrefix(fn.Name(), "New") && !uuidDeterministic[fn.Name()] {
			report(id.Pos(), "%s draws from a global random source; derive IDs from node.Env.Rand", name)
		}
	}
}

// isPackageLevel reports whether obj is declared at package scope (not a
// method or field), so that a use like os.Args or os.Open is counted once per
// reference but methods of values such as (*os.File).Close are not.
func isPackageLevel(obj types.Object) bool {
	return obj.Parent() == obj.Pkg().Scope()
}

// isErrorSentinel reports whether names[i] of vs is an error-typed variable
// initialised by errors.New or fmt.Errorf.
func isErrorSentinel(info *types.Info, name *ast.Ident, vs *ast.ValueSpec, i int) bool {
	obj := info.Defs[name]
	if obj == nil || !types.Identical(obj.Type(), types.Universe.Lookup("error").Type()) {
		return false
	}
	if len(vs.Values) != len(vs.Names) {
		return false
	}
	call, ok := ast.Unparen(vs.Values[i]).(*ast.CallExpr)
	if !ok {
		return false
	}
	fn := calledFunc(info, call)
	if fn == nil {
		return false
	}
	switch funcName(fn) {
	case "errors.New", "fmt.Errorf":
		return true
	}
	return false
}

// calledFunc returns the package-level function or method a call invokes
// statically, or nil.
func calledFunc(info *types.Info, call *ast.CallExpr) *types.Func {
	var id *ast.Ident
	switch fun := ast.Unparen(call.Fun).(type) {
	case *ast.Ident:
		id = fun
	case *ast.SelectorExpr:
		id = fun.Sel
	case *ast.IndexExpr: // explicit instantiation f[T](...)
		return calledFunc(info, &ast.CallExpr{Fun: fun.X})
	case *ast.IndexListExpr:
		return calledFunc(info, &ast.CallExpr{Fun: fun.X})
	default:
		return nil
	}
	fn, _ := info.Uses[id].(*types.Func)
	return fn
}

// funcName is "pkgpath.Name" for a package-level function, "" otherwise.
func funcName(fn *types.Func) string {
	if fn.Pkg() == nil || fn.Type().(*types.Signature).Recv() != nil {
		return ""
	}
	return fn.Pkg().Path() + "." + fn.Name()
}

// isKind reports whether t's underlying type, or every type in a type
// parameter's type set, is a T (e.g. *types.Map).
func isKind[T types.Type](t types.Type) bool {
	if t == nil {
		return false
	}
	if tp, ok := types.Unalias(t).(*types.TypeParam); ok {
		iface, ok := tp.Constraint().Underlying().(*types.Interface)
		if !ok {
			return false
		}
		found := false
		for i := 0; i < iface.NumEmbeddeds(); i++ {
			u, ok := iface.EmbeddedType(i).(*types.Union)
			if !ok {
				if isKind[T](iface.EmbeddedType(i)) {
					found = true
					continue
				}
				return false
			}
			for j := 0; j < u.Len(); j++ {
				if !isKind[T](u.Term(j).Type()) {
					return false
				}
			}
			found = true
		}
		return found
	}
	_, ok := t.Underlying().(T)
	return ok
}
