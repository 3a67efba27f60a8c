// f32 values → f16 storage: thread w writes whole word w = (x[2w], x[2w + 1]) (no two threads share a word).
${UNIFORMS}

@group(0) @binding(0) var<storage, read> source: array<f32>;
@group(0) @binding(1) var<storage, read_write> words: array<u32>;
@group(0) @binding(2) var<uniform> u: PackUniforms;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * groups.x) * 64u + lid;
  if (2u * w >= u.count) { return; }
  let high = select(0.0, source[2u * w + 1u], 2u * w + 1u < u.count);
  words[w] = pack2x16float(vec2<f32>(source[2u * w], high));
}
