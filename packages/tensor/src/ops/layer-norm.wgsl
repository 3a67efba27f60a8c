// Normalises each row of a dense f32 matrix [rows, cols]: xhat = (x − mean) / sqrt(var + eps) with the biased
// variance (two passes: mean, then mean squared deviation). Writes xhat and 1/sqrt(var + eps) per row.

${UNIFORMS}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> normalized: array<f32>;
@group(0) @binding(2) var<storage, read_write> inverse_std: array<f32>;
@group(0) @binding(3) var<uniform> u: Uniforms;

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
  let base = row * u.cols;
  var total = 0.0;
  for (var col = lid.x; col < u.cols; col += THREADS) {
    total += input[base + col];
  }
  let mean = workgroup_sum(total, lid.x) / f32(u.cols);
  var squares = 0.0;
  for (var col = lid.x; col < u.cols; col += THREADS) {
    let deviation = input[base + col] - mean;
    squares += deviation * deviation;
  }
  let rstd = inverseSqrt(workgroup_sum(squares, lid.x) / f32(u.cols) + u.eps);
  for (var col = lid.x; col < u.cols; col += THREADS) {
    normalized[base + col] = (input[base + col] - mean) * rstd;
  }
  if (lid.x == 0u) {
    inverse_std[row] = rstd;
  }
}
