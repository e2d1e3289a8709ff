// Added to sigs.k8s.io/kube-network-policies/pkg/networkpolicy at build time (a `go build -overlay`, see
// localplatform/colors_platform/builds.py): the queue verdict as the xt NFQUEUE target through nft_compat, in place
// of nftables' native queue expression. Some kernels - these machines' among them - are built without nft_queue:
// the native expression is refused ("No such file or directory") and no rule of the engine's table is written, while
// the xt target (what iptables-nft writes for -j NFQUEUE) is there. Same queue, same bypass flag, same verdicts.
package networkpolicy

import (
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// queueVerdict sends the packet to the engine's queue: struct xt_NFQ_info_v3 {queuenum, queues_total, flags}, host
// byte order; flag NFQ_FLAG_BYPASS accepts the packet when no program listens on the queue.
func queueVerdict(queueID int, failOpen bool) expr.Any {
	var flags uint16
	if failOpen {
		flags = 0x1
	}
	info := xt.Unknown(append(append(binaryutil.NativeEndian.PutUint16(uint16(queueID)),
		binaryutil.NativeEndian.PutUint16(1)...), binaryutil.NativeEndian.PutUint16(flags)...))
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
