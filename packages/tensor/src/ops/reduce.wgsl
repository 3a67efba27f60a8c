// Row sums of a dense f32 matrix [rows, cols], times alpha (1 for sum, 1/cols for mean). One workgroup per row.

${UNIFORMS}

const THREADS = 64u;

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> u: Uniforms;

var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(THREADS)
fn main(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let row = wid.x + wid.y * groups.x;
  if (row >= u.rows) {
    return;
  }
  var total = 0.0;
  for (var col = lid.x; col < u.cols; col += THREADS) {
    total += input[row * u.cols + col];
  }
  partial[lid.x] = total;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (lid.x < stride) {
      partial[lid.x] += partial[lid.x + stride];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    output[row] = partial[0] * u.alpha;
  }
}
