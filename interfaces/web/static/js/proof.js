// An event's audit proof: its leaf in the Merkle tree of the log, the path to the root, and
// the anchor on a chain once there is one.

import { get } from "./api.js";
import { h, link, notice } from "./dom.js";
import { count } from "./format.js";

export function loadProof(position) {
  return get(`/audit/events/${position}/proof`);
}

export function renderProof(proof, agentId) {
  const anchored = proof.tx_hash
    ? [h("dt", {}, "Anchor transaction"), h("dd", { class: "hash" }, proof.tx_hash),
       h("dt", {}, "Block"), h("dd", {}, count(proof.block_number)),
       h("dt", {}, "Chain"), h("dd", {}, `${proof.chain_id ?? "–"} · contract ${proof.contract ?? "–"}`)]
    : [h("dt", {}, "Anchor"), h("dd", {}, "not anchored on a chain yet")];
  return h("div", { class: "proof" },
    h("p", { class: "crumbs" }, link("#/", "Fleet"), agentId ? [" / ", link(`#/agents/${encodeURIComponent(agentId)}`, agentId)] : null, " / proof"),
    h("h1", { tabindex: "-1" }, `Audit proof of event ${count(proof.position)}`),
    h("p", {}, "The event is leaf ", count(proof.leaf_index), " of a tree of ", count(proof.tree_size),
      " events. Hashing the leaf with the path below gives the root; ", h("code", {}, `a2a-goals audit proof ${proof.position}`),
      " prints a self-contained check."),
    h("dl", { class: "facts" },
      h("dt", {}, "Leaf hash"), h("dd", { class: "hash" }, proof.leaf_hash),
      h("dt", {}, "Root hash"), h("dd", { class: "hash" }, proof.root_hash),
      h("dt", {}, "Tree size"), h("dd", {}, count(proof.tree_size)),
      ...anchored),
    h("h2", {}, `Inclusion path (${count(proof.inclusion_proof.length)} hashes)`),
    proof.inclusion_proof.length
      ? h("ol", { class: "hashes" }, proof.inclusion_proof.map((hash) => h("li", { class: "hash" }, hash)))
      : notice("empty", "The tree has one leaf: the leaf hash is the root."));
}
