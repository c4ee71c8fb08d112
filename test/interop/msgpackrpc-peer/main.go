// msgpackrpc-peer: a Go net/rpc peer over HashiCorp's net-rpc-msgpackrpc codec and go-msgpack
// 0.5.x (the reference implementation meshfed's msgpack-RPC layer must interoperate with).
//
// Modes:
//
//	-mode server  -addr 127.0.0.1:0 [-consul-byte]   serve Test.* and Status.*; prints "LISTENING <addr>"
//	-mode client  -addr HOST:PORT   [-consul-byte]   run the interop checks against a server; one JSON line per check
//	-mode dump                                        print go-msgpack encodings as "name hex" lines
//	-mode bench   -addr HOST:PORT -concurrency N -duration-ms D -warmup-ms W
//	                                                  Status.Ping over ONE connection; prints one JSON line
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/codec"
	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc"
)

// Inner is nested inside Echo.
type Inner struct {
	Name string
	Data []byte
	When time.Time
	Tags map[string]string
}

// Echo carries every kind the meshfed schema DSL maps.
type Echo struct {
	Str        string
	LongStr    string
	Bin        []byte
	LongBin    []byte
	Int        int
	Small      uint16
	Big        int64
	Uint64     uint64
	Uint64Safe uint64
	Float      float64
	Bool       bool
	Time       time.Time
	OldTime    time.Time
	ZoneTime   time.Time
	ZeroTime   time.Time
	Dur        time.Duration
	NegDur     time.Duration
	NilSlice   []string
	Empty      []string
	NilBytes   []byte
	EmptyBytes []byte
	Map        map[string]int
	NilMap     map[string]string
	Nested     Inner
	NestedPtr  *Inner
	NilPtr     *Inner
	List       []Inner
}

func fixture() Echo {
	longBin := make([]byte, 300)
	for i := range longBin {
		longBin[i] = byte(i * 7)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return Echo{
		Str:        "héllo, 世界",
		LongStr:    strings.Repeat("x", 40),
		Bin:        []byte{0x00, 0xff, 0xfe, 0xc0, 0x80, 0xc3, 0x28},
		LongBin:    longBin,
		Int:        -200,
		Small:      7946,
		Big:        -1 << 40,
		Uint64:     18446744073709551615,
		Uint64Safe: 300,
		Float:      1.5,
		Bool:       true,
		Time:       when,
		OldTime:    time.Date(1901, 12, 13, 20, 45, 52, 1, time.UTC),
		ZoneTime:   time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("", 2*3600)),
		Dur:        1500 * time.Millisecond,
		NegDur:     -5 * time.Second,
		Empty:      []string{},
		EmptyBytes: []byte{},
		Map:        map[string]int{"a": 1},
		Nested:     Inner{Name: "in", Data: []byte{0xff}, When: when, Tags: map[string]string{"k": "v"}},
		NestedPtr:  &Inner{Name: "ptr", Data: []byte{0xc3}},
		List:       []Inner{{Name: "a"}, {Name: "b", Data: []byte{0x80}}},
	}
}

// diff compares like reflect.DeepEqual, but times by their MarshalBinary bytes (instant and
// zone offset), and tells where they differ.
func diff(path string, a, b reflect.Value) string {
	if a.Type() == reflect.TypeOf(time.Time{}) {
		ab, _ := a.Interface().(time.Time).MarshalBinary()
		bb, _ := b.Interface().(time.Time).MarshalBinary()
		if string(ab) != string(bb) {
			return fmt.Sprintf("%s: %v (%x) != %v (%x)", path, a.Interface(), ab, b.Interface(), bb)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if d := diff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Ptr:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil-ness differs (%v vs %v)", path, a.IsNil(), b.IsNil())
			}
			return ""
		}
		return diff(path, a.Elem(), b.Elem())
	case reflect.Slice:
		// go-msgpack decodes a zero-length raw (a0) into a nil []byte (decodeBytes leaves the
		// slice untouched), so Go itself does not keep empty vs nil for byte slices.
		if a.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				return fmt.Sprintf("%s: %x != %x", path, a.Bytes(), b.Bytes())
			}
			return ""
		}
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil-ness differs (%v vs %v)", path, a.IsNil(), b.IsNil())
		}
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d != %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil-ness differs (%v vs %v)", path, a.IsNil(), b.IsNil())
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface())
		}
		return ""
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %#v != %#v", path, a.Interface(), b.Interface())
		}
		return ""
	}
}

func diffEcho(got, want *Echo) string {
	return diff("Echo", reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem())
}

// ---------------------------------------------------------------------------------------------
// server

// Test is the test service.
type Test struct{}

// FailArgs asks Test.Fail to return an error with this text.
type FailArgs struct{ Message string }

// SleepArgs asks Test.Sleep to wait, then echo Tag.
type SleepArgs struct {
	Ms  int
	Tag string
}

// SleepReply is Test.Sleep's answer.
type SleepReply struct{ Tag string }

// CheckReply is Test.Check's answer.
type CheckReply struct {
	OK   bool
	Diff string
}

// Echo returns its argument.
func (*Test) Echo(args Echo, reply *Echo) error { *reply = args; return nil }

// Fixture returns the shared fixture.
func (*Test) Fixture(args struct{}, reply *Echo) error { *reply = fixture(); return nil }

// Check compares its argument with the fixture (as decoded by go-msgpack).
func (*Test) Check(args Echo, reply *CheckReply) error {
	want := fixture()
	reply.Diff = diffEcho(&args, &want)
	reply.OK = reply.Diff == ""
	return nil
}

// Fail returns an error with the given text.
func (*Test) Fail(args FailArgs, reply *struct{}) error { return errors.New(args.Message) }

// Sleep waits args.Ms milliseconds, then echoes the tag.
func (*Test) Sleep(args SleepArgs, reply *SleepReply) error {
	time.Sleep(time.Duration(args.Ms) * time.Millisecond)
	reply.Tag = args.Tag
	return nil
}

// Status mirrors Consul's Status endpoint.
type Status struct{}

// Ping answers an empty struct.
func (*Status) Ping(args struct{}, reply *struct{}) error { return nil }

// Leader returns a fixed leader address.
func (*Status) Leader(args struct{}, reply *string) error { *reply = "127.0.0.1:8300"; return nil }

// Peers returns fixed peers.
func (*Status) Peers(args struct{}, reply *[]string) error {
	*reply = []string{"127.0.0.1:8300", "127.0.0.2:8300"}
	return nil
}

func serve(addr string, consulByte bool) error {
	srv := rpc.NewServer()
	if err := srv.Register(&Test{}); err != nil {
		return err
	}
	if err := srv.Register(&Status{}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func(c net.Conn) {
			if consulByte {
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 0 {
					c.Close()
					return
				}
			}
			// One connection = one codec loop, as Consul's handleConsulConn.
			srv.ServeCodec(msgpackrpc.NewServerCodec(c))
		}(conn)
	}
}

// ---------------------------------------------------------------------------------------------
// client (checks a meshfed server)

type result struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

func report(name string, detail string) bool {
	line, _ := json.Marshal(result{Check: name, OK: detail == "", Detail: detail})
	fmt.Println(string(line))
	return detail == ""
}

func dial(addr string, consulByte bool) (*rpc.Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if consulByte {
		if _, err := conn.Write([]byte{0}); err != nil {
			return nil, err
		}
	}
	return msgpackrpc.NewClient(conn), nil
}

func runClient(addr string, consulByte bool) bool {
	client, err := dial(addr, consulByte)
	if err != nil {
		return report("dial", err.Error())
	}
	defer client.Close()
	ok := true
	want := fixture()

	// Echo: Go encodes the fixture, meshfed decodes and re-encodes it, Go decodes the reply.
	var echo Echo
	if err := client.Call("Test.Echo", want, &echo); err != nil {
		ok = report("echo", err.Error()) && ok
	} else {
		ok = report("echo", diffEcho(&echo, &want)) && ok
	}

	// Fixture: meshfed encodes its own copy of the fixture; Go must decode the same value.
	var fx Echo
	if err := client.Call("Test.Fixture", struct{}{}, &fx); err != nil {
		ok = report("fixture", err.Error()) && ok
	} else {
		ok = report("fixture", diffEcho(&fx, &want)) && ok
	}

	// Errors: a handler's error text, and net/rpc's own texts for unknown names.
	expectErr := func(name, method string, args interface{}, text string) {
		var reply struct{}
		err := client.Call(method, args, &reply)
		switch {
		case err == nil:
			ok = report(name, "expected an error, got none") && ok
		case err.Error() != text:
			ok = report(name, fmt.Sprintf("error %q, want %q", err.Error(), text)) && ok
		default:
			ok = report(name, "") && ok
		}
	}
	expectErr("handler-error", "Test.Fail", FailArgs{Message: "federation state not found"}, "federation state not found")
	expectErr("unknown-service", "Nope.Method", struct{}{}, "rpc: can't find service Nope.Method")
	expectErr("unknown-method", "Test.Nope", struct{}{}, "rpc: can't find method Test.Nope")
	expectErr("ill-formed", "NoDot", struct{}{}, "rpc: service/method request ill-formed: NoDot")

	// Status service.
	if err := client.Call("Status.Ping", struct{}{}, &struct{}{}); err != nil {
		ok = report("status-ping", err.Error()) && ok
	} else {
		ok = report("status-ping", "") && ok
	}
	var leader string
	if err := client.Call("Status.Leader", struct{}{}, &leader); err != nil || leader != "10.0.0.1:8300" {
		ok = report("status-leader", fmt.Sprintf("%q %v", leader, err)) && ok
	} else {
		ok = report("status-leader", "") && ok
	}
	var peers []string
	if err := client.Call("Status.Peers", struct{}{}, &peers); err != nil || strings.Join(peers, ",") != "10.0.0.1:8300,10.0.0.2:8300" {
		ok = report("status-peers", fmt.Sprintf("%q %v", peers, err)) && ok
	} else {
		ok = report("status-peers", "") && ok
	}

	// Concurrency: 64 calls in flight on one connection, answered out of order by the server
	// (longer sleeps for earlier calls), each reply matched to its call by Seq.
	const n = 64
	var wg sync.WaitGroup
	errs := make([]string, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var reply SleepReply
			tag := fmt.Sprintf("call-%d", i)
			if err := client.Call("Test.Sleep", SleepArgs{Ms: (n - i) % 8 * 5, Tag: tag}, &reply); err != nil {
				errs[i] = err.Error()
			} else if reply.Tag != tag {
				errs[i] = fmt.Sprintf("reply %q for %q", reply.Tag, tag)
			}
		}(i)
	}
	wg.Wait()
	var bad []string
	for _, e := range errs {
		if e != "" {
			bad = append(bad, e)
		}
	}
	sort.Strings(bad)
	detail := strings.Join(bad, "; ")
	if detail == "" && time.Since(start) > 5*time.Second {
		detail = fmt.Sprintf("64 concurrent calls took %v: the server did not run them concurrently", time.Since(start))
	}
	ok = report("concurrent", detail) && ok
	return ok
}

// ---------------------------------------------------------------------------------------------
// dump (go-msgpack's own bytes, for golden tests)

func enc(v interface{}) string {
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, &codec.MsgpackHandle{}).Encode(v); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

func dump() {
	fmt.Println("fixture", enc(fixture()))
	fmt.Println("request", enc(&rpc.Request{ServiceMethod: "Status.Ping", Seq: 0})+enc(struct{}{}))
	fmt.Println("response", enc(&rpc.Response{ServiceMethod: "Status.Ping", Seq: 0}))
	fmt.Println("error-response", enc(&rpc.Response{ServiceMethod: "Nope.Method", Seq: 7, Error: "rpc: can't find service Nope.Method"}))
	fmt.Println("peers", enc([]string{"127.0.0.1:8300", "127.0.0.2:8300"}))
	fmt.Println("empty", enc(struct{}{}))
	fmt.Println("time-nanos", enc(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)))
	fmt.Println("time-zero", enc(time.Time{}))
	fmt.Println("time-zone-seconds", enc(time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600+30))))
	fmt.Println("ints", enc([]int64{0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -9223372036854775808, 9223372036854775807}))
	fmt.Println("uint64-max", enc(uint64(18446744073709551615)))
	fmt.Println("strings", enc([]string{"", strings.Repeat("a", 31), strings.Repeat("b", 32), strings.Repeat("c", 255), strings.Repeat("d", 256)}))
	fmt.Println("string-65536", enc(strings.Repeat("e", 65536))[:16])
	fmt.Println("bytes-nonutf8", enc([]byte{0xff, 0xfe, 0x00, 0x80}))
	fmt.Println("float", enc(3.25))
}

// ---------------------------------------------------------------------------------------------
// bench

func bench(addr string, concurrency int, duration, warmup time.Duration) error {
	client, err := dial(addr, false)
	if err != nil {
		return err
	}
	defer client.Close()
	var mu sync.Mutex
	var lat []time.Duration
	var calls int
	var measuring, stop int32
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			for {
				if atomic.LoadInt32(&stop) != 0 {
					break
				}
				m := atomic.LoadInt32(&measuring) != 0
				t0 := time.Now()
				if err := client.Call("Status.Ping", struct{}{}, &struct{}{}); err != nil {
					fmt.Fprintln(os.Stderr, "call:", err)
					os.Exit(1)
				}
				if m {
					local = append(local, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			calls += len(local)
			mu.Unlock()
		}()
	}
	time.Sleep(warmup)
	atomic.StoreInt32(&measuring, 1)
	t0 := time.Now()
	time.Sleep(duration)
	atomic.StoreInt32(&stop, 1)
	elapsed := time.Since(t0)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]interface{}{
		"calls": calls, "seconds": elapsed.Seconds(), "callsPerSec": float64(calls) / elapsed.Seconds(),
		"p50us": pct(0.50), "p99us": pct(0.99),
	})
	fmt.Println(string(out))
	return nil
}

func main() {
	mode := flag.String("mode", "server", "server | client | dump | bench")
	addr := flag.String("addr", "127.0.0.1:0", "listen or dial address")
	consulByte := flag.Bool("consul-byte", false, "expect/send Consul's RPCConsul type byte 0x00 first")
	concurrency := flag.Int("concurrency", 1, "bench: goroutines sharing the one connection")
	durationMs := flag.Int("duration-ms", 3000, "bench: measured time")
	warmupMs := flag.Int("warmup-ms", 500, "bench: unmeasured warm-up time")
	flag.Parse()
	switch *mode {
	case "server":
		if err := serve(*addr, *consulByte); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "client":
		if !runClient(*addr, *consulByte) {
			os.Exit(1)
		}
	case "dump":
		dump()
	case "bench":
		if err := bench(*addr, *concurrency, time.Duration(*durationMs)*time.Millisecond, time.Duration(*warmupMs)*time.Millisecond); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", *mode)
		os.Exit(2)
	}
}
