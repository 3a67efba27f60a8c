// Row sums of a dense f32 matrix [rows, cols], times alpha (1 for sum, 1/cols for mean). One workgroup per row.

${UNIFORMS}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> u: Uniforms;

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
  let row_total = workgroup_sum(total, lid.x);
  if (lid.x == 0u) {
    output[row] = row_total * u.alpha;
  }
}
