using Sd.Engine.Tensors;

namespace Sd.Engine.Tests;

public unsafe class TensorArenaTests
{
    [Fact]
    public void Tensors_are_64_byte_aligned_zeroed_and_sized_by_shape()
    {
        using Tensor t = Tensor.Allocate([2, 3, 5, 7]);
        Assert.Equal(0, (nint)t.Data % 64);
        Assert.Equal(210, t.Length);
        Assert.Equal(7, t.Dim(-1));
        foreach (float v in t.Span)
        {
            Assert.Equal(0f, v);
        }
        Tensor flat = t.Reshape([6, 35]);
        Assert.True(flat.Data == t.Data);
        Assert.Throws<ArgumentException>(() => t.Reshape([6, 36]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Allocate([2, -1]));
    }

    [Fact]
    public void Buffers_with_disjoint_lifetimes_share_memory_and_overlapping_ones_never_alias()
    {
        // A chain like a network's: each activation is read by the next step only, one skip lives across all.
        var plan = new ArenaPlan();
        int skip = plan.Add(1000, 0, 5);
        var chain = new int[5];
        for (int step = 0; step < chain.Length; step++)
        {
            chain[step] = plan.Add(4096, step, step + 1);
        }
        (long[] offsets, long total) = plan.Solve();
        // Live at once: the skip plus two chain buffers -> the arena needs about three buffers, not six.
        Assert.True(total <= 1008 + 2 * 4096, $"arena of {total} floats does not reuse memory");
        for (int a = 0; a < plan.Count; a++)
        {
            Assert.Equal(0, offsets[a] % 16); // 64-byte aligned slots
            for (int b = a + 1; b < plan.Count; b++)
            {
                bool live = Overlaps(a, b, chain, skip);
                bool alias = offsets[a] < offsets[b] + plan.SizeOf(b) && offsets[b] < offsets[a] + plan.SizeOf(a);
                Assert.False(live && alias, $"slots {a} and {b} are live together and alias");
            }
        }
        using var arena = new TensorArena(plan);
        Tensor x = arena.Slot(chain[0], [64, 64]);
        Tensor y = arena.Slot(chain[2], [64, 64]);
        Assert.True(x.Data == y.Data, "chain[0] and chain[2] never live together and should share a slot");
        Assert.Throws<ArgumentException>(() => arena.Slot(skip, [1001]));
    }

    private static bool Overlaps(int a, int b, int[] chain, int skip)
    {
        (int, int) Life(int id) => id == skip ? (0, 5) : (Array.IndexOf(chain, id), Array.IndexOf(chain, id) + 1);
        (int a0, int a1) = Life(a);
        (int b0, int b1) = Life(b);
        return a0 <= b1 && b0 <= a1;
    }
}

public unsafe class NpyTensorsTests
{
    [Fact]
    public void Npy_boundary_converts_nchw_files_to_nhwc_tensors_and_back()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sd-engine-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var nchw = new float[2 * 4 * 3 * 5];
            for (int i = 0; i < nchw.Length; i++) nchw[i] = i;
            string input = Path.Combine(dir, "x.npy");
            Sd.Loaders.Npy.NpyFile.Write(input, Sd.Loaders.Npy.NpyArray.FromFloat32(nchw, [2, 4, 3, 5]));
            using Tensor t = NpyTensors.ReadNchwAsNhwc(input);
            Assert.Equal([2, 3, 5, 4], t.Shape.ToArray());
            Assert.Equal(nchw[((1 * 4 + 3) * 3 + 2) * 5 + 1], t.Span[((1 * 3 + 2) * 5 + 1) * 4 + 3]); // (n1,c3,y2,x1)
            string output = Path.Combine(dir, "y.npy");
            NpyTensors.WriteNhwcAsNchw(t, output);
            Assert.Equal(nchw, Sd.Loaders.Npy.NpyFile.Read(output).ToFloat32());
            Sd.Loaders.Npy.NpyFile.Write(input, Sd.Loaders.Npy.NpyArray.FromFloat32(nchw, [8, 15]));
            var e = Assert.Throws<Sd.Loaders.InvalidFileException>(() => NpyTensors.ReadNchwAsNhwc(input));
            Assert.Contains("x.npy", e.Message);
            Assert.Contains("4-D", e.Message);
            // No values under huge dimensions: h * w would overflow an int on the way to an NHWC shape.
            Sd.Loaders.Npy.NpyFile.Write(input, Sd.Loaders.Npy.NpyArray.FromFloat32([], [0, int.MaxValue, int.MaxValue, int.MaxValue]));
            Assert.Contains("holds no values (shape (0, 2147483647, 2147483647, 2147483647))",
                Assert.Throws<Sd.Loaders.InvalidFileException>(() => NpyTensors.ReadNchwAsNhwc(input)).Message);
            // A recorded noise draw with a NaN is refused naming its file.
            Sd.Loaders.Npy.NpyFile.Write(Path.Combine(dir, "noise_000.npy"), Sd.Loaders.Npy.NpyArray.FromFloat32([0f, float.NaN], [1, 2]));
            var nan = Assert.Throws<Sd.Loaders.InvalidFileException>(() => new Sd.Engine.Pipelines.FileNoise(dir).Next(new float[2]));
            Assert.Contains("noise_000.npy", nan.Message);
            Assert.Contains("holds NaN at index 1", nan.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
