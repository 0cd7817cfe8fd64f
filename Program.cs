using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
unsafe {
long bytes = 1L << 30;
float* p = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
NativeMemory.Fill(p, (nuint)bytes, 1);
int threads = int.Parse(args[0]);
for (int rep = 0; rep < 5; rep++) {
  var sw = Stopwatch.StartNew();
  var sums = new float[threads];
  Parallel.For(0, threads, new ParallelOptions{MaxDegreeOfParallelism=threads}, t => {
    long n = bytes / 4 / threads; float* q = p + t * n;
    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
    for (long i = 0; i < n; i += 64) { a0 += Vector512.Load(q + i); a1 += Vector512.Load(q + i + 16); a2 += Vector512.Load(q + i + 32); a3 += Vector512.Load(q + i + 48); }
    sums[t] = Vector512.Sum(a0 + a1 + a2 + a3);
  });
  Console.WriteLine($"{threads} threads: {bytes / sw.Elapsed.TotalSeconds / 1e9:F1} GB/s");
}
}
