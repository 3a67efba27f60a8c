// Softmax (or log-softmax) of each row of a dense f32 matrix [rows, cols], numerically stable: the row maximum
// is subtracted before exp. One workgroup per row; output dense f32.

${UNIFORMS}

override LOG_SOFTMAX: bool = false;

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
  let base = row * u.cols;
  var largest = -3.4028234663852886e38;
  for (var col = lid.x; col < u.cols; col += THREADS) {
    largest = max(largest, input[base + col]);
  }
  let row_max = workgroup_max(largest, lid.x);
  var total = 0.0;
  for (var col = lid.x; col < u.cols; col += THREADS) {
    total += exp(input[base + col] - row_max);
  }
  let row_sum = workgroup_sum(total, lid.x);
  for (var col = lid.x; col < u.cols; col += THREADS) {
    let shifted = input[base + col] - row_max;
    if (LOG_SOFTMAX) {
      output[base + col] = shifted - log(row_sum);
    } else {
      output[base + col] = exp(shifted) / row_sum;
    }
  }
}
