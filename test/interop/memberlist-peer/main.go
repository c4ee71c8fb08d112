// memberlist-peer: a Go reference peer for meshfed's memberlist, built on Debian's
// hashicorp/memberlist 0.2.2 (GOPATH mode, see shared/spec/hashicorp-wire.md §3). One process
// runs one or more (-nodes N) memberlist nodes; it is driven by JSON lines on stdin and reports
// JSON lines on stdout (the driver is test/interop/memberlist-peer.ts).
//
// Flags: -name -bind -port (0 = free port per node; otherwise node i uses port+i) -profile
// lan|wan|local -key base64 -meta-hex -dvsn min,max,cur -probe-interval -probe-timeout
// -gossip-interval -suspicion-mult -nodes N -bench -expect M -verbose.
//
// stdout: {"ev":"ready","idx","name","addr","port"} per node, then
//
//	{"ev":"join"|"leave"|"update","node":<observer name>,"idx","name","addr","port","meta":hex,"state":n}
//	{"ev":"msg","node","idx","data":hex}          NotifyMsg
//	{"ev":"log","node","idx","line"}              memberlist's log output, line by line
//	{"ev":"members","id","node","idx","members":[{name,addr,port,state,meta}]}
//	{"ev":"ok","id","cmd",...} / {"ev":"error","id","cmd","error"}
//
// bench mode (-bench) also prints {"ev":"converged","ms"}, {"ev":"failed-detected","name","ms"}
// and {"ev":"stats","cpuMs","rssBytes","tMs"}; per-node join/leave/update events and
// non-warning log lines are suppressed there unless -verbose.
//
// stdin: {"cmd":"join","node":i,"addrs":["name/host:port",...]}, {"cmd":"leave","node":i,
// "timeoutMs":n,"stay":bool}, {"cmd":"shutdown","node":i}, {"cmd":"members","node":i},
// {"cmd":"send","node":i,"to":name,"data":hex,"reliable":bool}, {"cmd":"meta","node":i,"meta":hex},
// {"cmd":"exit"}; bench: {"cmd":"join-all"} (nodes 1..N-1 join node 0; starts the convergence
// clock), {"cmd":"kill","node":i} (shutdown without leave; starts the failure-detection clock),
// {"cmd":"stats"}. Every command may carry "id", echoed in its answer.
// The process exits on "exit", on stdin EOF and when its parent dies (PR_SET_PDEATHSIG).
//
// Node states: memberlist 0.2.2 never updates the exported Node.State (nodeState.State shadows it,
// hashicorp-wire.md §12), so the real state is read through nodeStateMirror, a copy of the
// unexported nodeState layout (Node is its first field, so *Node == *nodeState).
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

func realState(n *memberlist.Node) int {
	return int((*nodeStateMirror)(unsafe.Pointer(n)).State)
}

// ---- output ------------------------------------------------------------------------------------

var outMu sync.Mutex
var out = bufio.NewWriter(os.Stdout)

func emit(ev map[string]interface{}) {
	b, err := json.Marshal(ev)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"ev":"error","error":%q}`, err.Error()))
	}
	outMu.Lock()
	out.Write(b)
	out.WriteByte('\n')
	err = out.Flush()
	outMu.Unlock()
	if err != nil {
		os.Exit(3) // stdout gone: the driver died
	}
}

// ---- nodes -------------------------------------------------------------------------------------

type node struct {
	idx    int
	name   string
	ml     *memberlist.Memberlist
	metaMu sync.Mutex
	meta   []byte
	down   bool // shut down (guarded by benchMu)
}

var (
	nodes   []*node
	bench   bool
	verbose bool
	expect  int
	start   = time.Now()
)

type delegate struct{ n *node }

func (d *delegate) NodeMeta(limit int) []byte {
	d.n.metaMu.Lock()
	defer d.n.metaMu.Unlock()
	if len(d.n.meta) > limit {
		return append([]byte(nil), d.n.meta[:limit]...)
	}
	return append([]byte(nil), d.n.meta...)
}
func (d *delegate) NotifyMsg(b []byte) {
	emit(map[string]interface{}{"ev": "msg", "node": d.n.name, "idx": d.n.idx, "data": hex.EncodeToString(b)})
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ n *node }

func nodeInfo(n *memberlist.Node) map[string]interface{} {
	return map[string]interface{}{
		"name": n.Name, "addr": n.Addr.String(), "port": n.Port,
		"meta": hex.EncodeToString(n.Meta), "state": realState(n),
	}
}

func (e *events) report(ev string, n *memberlist.Node) {
	benchObserve(e.n, ev, n.Name)
	if bench && !verbose {
		return
	}
	m := nodeInfo(n)
	m["ev"] = ev
	m["node"] = e.n.name
	m["idx"] = e.n.idx
	emit(m)
}
func (e *events) NotifyJoin(n *memberlist.Node)   { e.report("join", n) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.report("leave", n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.report("update", n) }

// logWriter turns memberlist's log output into {"ev":"log"} lines.
type logWriter struct {
	n   *node
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	var lines []string
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	w.mu.Unlock()
	for _, l := range lines {
		if bench && !verbose && !strings.Contains(l, "[ERR]") && !strings.Contains(l, "[WARN]") {
			continue
		}
		emit(map[string]interface{}{"ev": "log", "node": w.n.name, "idx": w.n.idx, "line": l})
	}
	return len(p), nil
}

// ---- bench bookkeeping (event driven: no polling) ----------------------------------------------

var (
	benchMu       sync.Mutex
	views         = map[int]map[string]bool{} // observer idx -> names it considers alive (not dead/left)
	convergeStart time.Time
	converging    bool
	killed        = map[string]time.Time{} // name -> kill time, until detected
)

func benchObserve(obs *node, ev string, name string) {
	if !bench {
		return
	}
	benchMu.Lock()
	defer benchMu.Unlock()
	v := views[obs.idx]
	if v == nil {
		v = map[string]bool{}
		views[obs.idx] = v
	}
	switch ev {
	case "join":
		v[name] = true
	case "leave":
		delete(v, name)
	}
	checkBenchLocked()
}

// checkBenchLocked prints converged / failed-detected once the condition holds on every live node.
func checkBenchLocked() {
	if converging {
		ok := true
		for _, n := range nodes {
			if !n.down && len(views[n.idx]) < expect {
				ok = false
				break
			}
		}
		if ok {
			converging = false
			emit(map[string]interface{}{"ev": "converged", "ms": ms(time.Since(convergeStart))})
		}
	}
	for name, t := range killed {
		ok := true
		for _, n := range nodes {
			if !n.down && views[n.idx][name] {
				ok = false
				break
			}
		}
		if ok {
			delete(killed, name)
			emit(map[string]interface{}{"ev": "failed-detected", "name": name, "ms": ms(time.Since(t))})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- setup -------------------------------------------------------------------------------------

func main() {
	name := flag.String("name", "ml", "node name (with -nodes N > 1: <name>-<i>)")
	bind := flag.String("bind", "127.0.0.1", "bind IP")
	port := flag.Int("port", 0, "bind port; 0 = pick a free one per node, else node i uses port+i")
	profile := flag.String("profile", "lan", "lan|wan|local")
	key := flag.String("key", "", "base64 encryption key (primary)")
	metaHex := flag.String("meta-hex", "", "node meta, hex")
	dvsn := flag.String("dvsn", "0,0,0", "delegate protocol min,max,cur (2,5,5 = serf-compatible)")
	probeInterval := flag.Duration("probe-interval", 0, "0 = profile's")
	probeTimeout := flag.Duration("probe-timeout", 0, "0 = profile's")
	gossipInterval := flag.Duration("gossip-interval", 0, "0 = profile's")
	pushPull := flag.Duration("push-pull-interval", 0, "0 = profile's")
	suspicionMult := flag.Int("suspicion-mult", 0, "0 = profile's")
	count := flag.Int("nodes", 1, "nodes in this process")
	flag.BoolVar(&bench, "bench", false, "bench mode")
	flag.IntVar(&expect, "expect", 0, "bench: members every node must see (default -nodes)")
	flag.BoolVar(&verbose, "verbose", false, "bench: report every event and log line")
	flag.Parse()

	// Die with the parent (the node test runner), whatever happens to it.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if os.Getppid() == 1 {
		os.Exit(4)
	}

	if expect == 0 {
		expect = *count
	}
	meta, err := hex.DecodeString(*metaHex)
	if err != nil {
		fatal("bad -meta-hex: %v", err)
	}
	var secret []byte
	if *key != "" {
		if secret, err = base64.StdEncoding.DecodeString(*key); err != nil {
			fatal("bad -key: %v", err)
		}
	}
	var dv [3]uint8
	parts := strings.Split(*dvsn, ",")
	if len(parts) != 3 {
		fatal("bad -dvsn %q", *dvsn)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(strings.TrimSpace(p), 10, 8)
		if err != nil {
			fatal("bad -dvsn %q", *dvsn)
		}
		dv[i] = uint8(v)
	}

	for i := 0; i < *count; i++ {
		n := &node{idx: i, name: *name, meta: meta}
		if *count > 1 {
			n.name = fmt.Sprintf("%s-%d", *name, i)
		}
		var c *memberlist.Config
		switch *profile {
		case "lan":
			c = memberlist.DefaultLANConfig()
		case "wan":
			c = memberlist.DefaultWANConfig()
		case "local":
			c = memberlist.DefaultLocalConfig()
		default:
			fatal("bad -profile %q", *profile)
		}
		c.Name = n.name
		c.BindAddr = *bind
		c.BindPort = 0
		if *port != 0 {
			c.BindPort = *port + i
		}
		c.AdvertisePort = c.BindPort
		if *probeInterval > 0 {
			c.ProbeInterval = *probeInterval
		}
		if *probeTimeout > 0 {
			c.ProbeTimeout = *probeTimeout
		}
		if *gossipInterval > 0 {
			c.GossipInterval = *gossipInterval
		}
		if *pushPull > 0 {
			c.PushPullInterval = *pushPull
		}
		if *suspicionMult > 0 {
			c.SuspicionMult = *suspicionMult
		}
		c.DelegateProtocolMin, c.DelegateProtocolMax, c.DelegateProtocolVersion = dv[0], dv[1], dv[2]
		if secret != nil {
			c.SecretKey = secret
		}
		c.Delegate = &delegate{n}
		c.Events = &events{n}
		c.LogOutput = &logWriter{n: n}
		ml, err := memberlist.Create(c)
		if err != nil {
			fatal("node %s: %v", n.name, err)
		}
		n.ml = ml
		nodes = append(nodes, n)
		ln := ml.LocalNode()
		emit(map[string]interface{}{"ev": "ready", "idx": i, "name": n.name, "addr": ln.Addr.String(), "port": ln.Port})
	}

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c command
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			emit(map[string]interface{}{"ev": "error", "cmd": "?", "error": "bad json: " + err.Error()})
			continue
		}
		handle(&c)
	}
	exit()
}

func fatal(format string, args ...interface{}) {
	emit(map[string]interface{}{"ev": "error", "cmd": "start", "error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

func exit() {
	for _, n := range nodes {
		_ = n.ml.Shutdown()
	}
	os.Exit(0)
}

// ---- commands ----------------------------------------------------------------------------------

type command struct {
	Cmd       string   `json:"cmd"`
	ID        *int64   `json:"id"`
	Node      int      `json:"node"`
	Addrs     []string `json:"addrs"`
	TimeoutMs int      `json:"timeoutMs"`
	Stay      bool     `json:"stay"`
	To        string   `json:"to"`
	Data      string   `json:"data"`
	Reliable  bool     `json:"reliable"`
	Meta      string   `json:"meta"`
}

func (c *command) reply(ev string, extra map[string]interface{}) {
	m := map[string]interface{}{"ev": ev, "cmd": c.Cmd}
	if c.ID != nil {
		m["id"] = *c.ID
	}
	for k, v := range extra {
		m[k] = v
	}
	emit(m)
}

func (c *command) fail(err error) { c.reply("error", map[string]interface{}{"error": err.Error()}) }

func handle(c *command) {
	if c.Cmd == "exit" {
		c.reply("ok", nil)
		exit()
	}
	if c.Cmd == "stats" {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			c.fail(err)
			return
		}
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		c.reply("stats", map[string]interface{}{"cpuMs": ms(cpu), "rssBytes": rss(), "tMs": ms(time.Since(start))})
		return
	}
	if c.Cmd == "join-all" {
		if len(nodes) < 1 {
			c.fail(fmt.Errorf("no nodes"))
			return
		}
		benchMu.Lock()
		convergeStart = time.Now()
		converging = true
		benchMu.Unlock()
		n0 := nodes[0].ml.LocalNode()
		target := fmt.Sprintf("%s/%s", n0.Name, net.JoinHostPort(n0.Addr.String(), strconv.Itoa(int(n0.Port))))
		go func() {
			var wg sync.WaitGroup
			errs := make(chan error, len(nodes))
			if len(c.Addrs) > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := nodes[0].ml.Join(c.Addrs); err != nil {
						errs <- err
					}
				}()
			}
			for _, n := range nodes[1:] {
				wg.Add(1)
				go func(n *node) {
					defer wg.Done()
					if _, err := n.ml.Join([]string{target}); err != nil {
						errs <- fmt.Errorf("%s: %v", n.name, err)
					}
				}(n)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				c.fail(err)
				return
			}
			c.reply("ok", nil)
			benchMu.Lock()
			checkBenchLocked()
			benchMu.Unlock()
		}()
		return
	}
	if c.Node < 0 || c.Node >= len(nodes) {
		c.fail(fmt.Errorf("no node %d", c.Node))
		return
	}
	n := nodes[c.Node]
	switch c.Cmd {
	case "join":
		go func() {
			k, err := n.ml.Join(c.Addrs)
			if err != nil {
				c.fail(err)
				return
			}
			c.reply("ok", map[string]interface{}{"joined": k})
		}()
	case "leave":
		go func() {
			t := time.Duration(c.TimeoutMs) * time.Millisecond
			if t <= 0 {
				t = 5 * time.Second
			}
			err := n.ml.Leave(t)
			if err == nil && !c.Stay {
				markDown(n)
				err = n.ml.Shutdown()
			}
			if err != nil {
				c.fail(err)
				return
			}
			c.reply("ok", nil)
		}()
	case "shutdown", "kill":
		markDown(n)
		if c.Cmd == "kill" {
			benchMu.Lock()
			killed[n.name] = time.Now()
			benchMu.Unlock()
		}
		if err := n.ml.Shutdown(); err != nil {
			c.fail(err)
			return
		}
		c.reply("ok", nil)
		benchMu.Lock()
		checkBenchLocked()
		benchMu.Unlock()
	case "members":
		var list []map[string]interface{}
		for _, m := range n.ml.Members() {
			list = append(list, nodeInfo(m))
		}
		if list == nil {
			list = []map[string]interface{}{}
		}
		c.reply("members", map[string]interface{}{"node": n.name, "idx": n.idx, "members": list})
	case "send":
		data, err := hex.DecodeString(c.Data)
		if err != nil {
			c.fail(err)
			return
		}
		var to *memberlist.Node
		for _, m := range n.ml.Members() {
			if m.Name == c.To {
				to = m
			}
		}
		if to == nil {
			c.fail(fmt.Errorf("no live member %q", c.To))
			return
		}
		go func() {
			var err error
			if c.Reliable {
				err = n.ml.SendReliable(to, data)
			} else {
				err = n.ml.SendBestEffort(to, data)
			}
			if err != nil {
				c.fail(err)
				return
			}
			c.reply("ok", nil)
		}()
	case "meta":
		meta, err := hex.DecodeString(c.Meta)
		if err != nil {
			c.fail(err)
			return
		}
		n.metaMu.Lock()
		n.meta = meta
		n.metaMu.Unlock()
		go func() {
			if err := n.ml.UpdateNode(5 * time.Second); err != nil {
				c.fail(err)
				return
			}
			c.reply("ok", nil)
		}()
	default:
		c.fail(fmt.Errorf("unknown command %q", c.Cmd))
	}
}

func markDown(n *node) {
	benchMu.Lock()
	n.down = true
	benchMu.Unlock()
}

// rss reads VmRSS from /proc/self/status, in bytes.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			fs := strings.Fields(l)
			if len(fs) >= 2 {
				kb, _ := strconv.ParseInt(fs[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return -1
}
