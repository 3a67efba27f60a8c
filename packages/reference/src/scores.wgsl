// Forward step 1: S[b, h, i, j] = attention_score(...) for every element, MASKED where removed.
${UNIFORMS}

@group(0) @binding(0) var<storage, read> q_data: array<${ELEMENT}>;
@group(0) @binding(1) var<storage, read> k_data: array<${ELEMENT}>;
@group(0) @binding(2) var<storage, read> mask_data: array<${MASK_ELEMENT}>;
@group(0) @binding(3) var<storage, read> sequences: array<u32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<uniform> u: AttentionUniforms;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * groups.x) * 64u + lid;
  let count = u.batch * u.query_heads * u.query_length * u.key_length;
  if (t >= count) { return; }
  let j = t % u.key_length;
  let row = t / u.key_length;
  let i = row % u.query_length;
  let bh = row / u.query_length;
  let h = bh % u.query_heads;
  let b = bh / u.query_heads;
  let s = sequence_of(b);
  scores[t] = attention_score(b, h, i, j, s).x;
}
