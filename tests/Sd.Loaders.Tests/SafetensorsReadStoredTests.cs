using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// <see cref="SafetensorsFile.ReadStored"/>: positional reads in parallel chunks must give exactly the stored bytes
/// (a tensor of several chunks with an odd tail, at an odd data offset, and a small one), for a file and for an
/// in-memory image, and a file truncated after opening must fail naming the file and tensor, not hand back zeros.
/// </summary>
public sealed unsafe class SafetensorsReadStoredTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static SafetensorsWriter Writer()
    {
        var random = new Random(5);
        var writer = new SafetensorsWriter();
        writer.AddGenerated("small", TensorDType.F16, [3], bytes => random.NextBytes(bytes));
        // 9 MB + 6 bytes: three 4 MiB chunks, the last one short; starts 6 bytes into the data area.
        writer.AddGenerated("large", TensorDType.F16, [4_500_003], bytes => random.NextBytes(bytes));
        return writer;
    }

    private string WriteFile(string name)
    {
        string path = _dir.File(name);
        using FileStream stream = File.Create(path);
        Writer().Write(stream);
        return path;
    }

    [Fact]
    public void Stored_bytes_read_from_a_file_and_from_memory_equal_the_mapped_bytes()
    {
        using SafetensorsFile mapped = SafetensorsFile.Open(WriteFile("w.safetensors"));
        using SafetensorsFile inMemory = SafetensorsFile.InMemory("memory", Writer());
        foreach (SafetensorsFile file in new[] { mapped, inMemory })
        {
            foreach (TensorInfo tensor in file.Tensors)
            {
                var buffer = new byte[tensor.ByteLength + 1];
                buffer[^1] = 0xA5;
                fixed (byte* p = buffer)
                {
                    file.ReadStored(tensor, p);
                }
                Assert.True(file.GetBytes(tensor).SequenceEqual(buffer.AsSpan(0, (int)tensor.ByteLength)), $"{file.Path} {tensor.Name}");
                Assert.Equal(0xA5, buffer[^1]); // nothing written past the tensor
            }
        }
    }

    [Fact]
    public void A_file_truncated_after_opening_fails_naming_the_tensor()
    {
        string path = WriteFile("cut.safetensors");
        using SafetensorsFile file = SafetensorsFile.Open(path);
        TensorInfo large = file.Tensors.First(t => t.Name == "large");
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(stream.Length - 5_000_000);
        }
        var buffer = new byte[large.ByteLength];
        var e = Assert.Throws<InvalidFileException>(() =>
        {
            fixed (byte* p = buffer)
            {
                file.ReadStored(large, p);
            }
        });
        Assert.Contains("cut.safetensors", e.Message);
        Assert.Contains("'large'", e.Message);
    }
}
