using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Sd.Kernels.Convert;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;
using Sd.Loaders.IO;

namespace Sd.Loaders.Safetensors;

/// <summary>
/// A memory-mapped .safetensors file. The header is fully validated on open, and opening a 4 GB checkpoint costs
/// nothing more: tensor bytes are read on demand, by <see cref="ReadStored"/> (positional reads, for weights packed at
/// load) or through the mapping (<see cref="GetBytes"/>: the OS pages them in and can drop them again).
/// <see cref="InMemory"/> makes the same object over a file image built in native memory.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    // A mapped file has _map, _view and _handle (for positional reads); an in-memory one owns _image instead.
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly SafeFileHandle? _handle;
    private readonly byte* _image;
    private readonly byte* _data;
    private readonly long _dataOffset; // of the data area in the file
    private readonly Dictionary<string, TensorInfo> _byName;

    // Row blocks handed out by RowBlock: tensors of this file that its header does not list. Added to only by
    // ModelSource while it maps a single file, before any reader runs; read-only afterwards.
    private readonly HashSet<TensorInfo> _rowBlocks = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, SafeFileHandle? handle,
        byte* image, byte* data, long dataOffset, SafetensorsHeader.Parsed header)
    {
        Path = path;
        _map = map;
        _view = view;
        _handle = handle;
        _image = image;
        _data = data;
        _dataOffset = dataOffset;
        Tensors = header.Tensors;
        Metadata = header.Metadata;
        _byName = new Dictionary<string, TensorInfo>(header.Tensors.Count, StringComparer.Ordinal);
        foreach (TensorInfo tensor in header.Tensors)
        {
            _byName.Add(tensor.Name, tensor);
        }
    }

    /// <summary>The file's path (for an in-memory file, the name it was given).</summary>
    public string Path { get; }

    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        RequireLittleEndian();
        PickleGuard.RefuseByExtension(path);
        InputFile.Check(path, "safetensors file");
        SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long fileLength;
        MemoryMappedFile map;
        try
        {
            // The length of the file opened, not of whatever the path named a moment before.
            fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
            {
                throw new InvalidFileException(path, $"file is {fileLength} bytes; a safetensors file starts with an 8-byte header length");
            }
            map = MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        MemoryMappedViewAccessor? view = null;
        bool acquired = false;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* basePointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
            acquired = true;
            basePointer += view.PointerOffset;
            SafetensorsHeader.Parsed parsed = Validate(path, basePointer, fileLength, out byte* data);
            return new SafetensorsFile(path, map, view, handle, null, data, data - basePointer, parsed);
        }
        catch
        {
            if (acquired)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }
            view?.Dispose();
            map.Dispose();
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The file <paramref name="writer"/> would save, written to native memory instead of disk and validated exactly as
    /// <see cref="Open"/> validates a file, for models made in memory (the built-in demo model). <paramref name="name"/>
    /// stands for the path in messages. The memory is freed on Dispose.
    /// </summary>
    public static SafetensorsFile InMemory(string name, SafetensorsWriter writer)
    {
        RequireLittleEndian();
        long length = writer.Length;
        byte* image = (byte*)AlignedMemory.Allocate(checked((nuint)length), zero: false);
        try
        {
            using (var stream = new UnmanagedMemoryStream(image, 0, length, FileAccess.Write))
            {
                writer.Write(stream);
            }
            SafetensorsHeader.Parsed parsed = Validate(name, image, length, out byte* data);
            return new SafetensorsFile(name, null, null, null, image, data, data - image, parsed);
        }
        catch
        {
            AlignedMemory.Free(image);
            throw;
        }
    }

    private static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Sd reads little-endian tensor data and needs a little-endian CPU");
        }
    }

    /// <summary>
    /// Validates a whole file image of at least 8 bytes (pickle magic, header length, header, tensor extents); returns
    /// the header and where the data area starts.
    /// </summary>
    private static SafetensorsHeader.Parsed Validate(string path, byte* file, long fileLength, out byte* data)
    {
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(file, 8));
        // Only a file whose first 8 bytes are not a header length followed by a JSON object is checked for pickle or
        // zip magic: a header of 640, 896, 1152 or 1408 bytes (mod 65536) starts with a pickle's protocol marker.
        // A real pickle's or zip's first 8 bytes read as a length past its end, or are not followed by '{'.
        bool looksLikeHeader = fileLength > 8 && declared <= (ulong)(fileLength - 8) && file[8] == (byte)'{';
        if (!looksLikeHeader)
        {
            PickleGuard.RefuseByMagic(path, new ReadOnlySpan<byte>(file, 8));
        }
        long headerLength = SafetensorsHeader.ValidateHeaderLength(path, declared, fileLength);
        var header = new ReadOnlySpan<byte>(file + 8, checked((int)headerLength));
        SafetensorsHeader.Parsed parsed = SafetensorsHeader.Parse(path, header, fileLength - 8 - headerLength);
        data = file + 8 + headerLength;
        return parsed;
    }

    public bool TryGet(string name, out TensorInfo tensor) => _byName.TryGetValue(name, out tensor!);

    /// <summary>The tensor's raw little-endian bytes, valid until this file is disposed.</summary>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor)
    {
        RequireOwn(tensor);
        if (tensor.ByteLength > int.MaxValue)
        {
            throw new InvalidFileException(Path, $"tensor '{tensor.Name}' is {tensor.ByteLength} bytes; tensors over 2 GiB are not supported");
        }
        if (_view is not null)
        {
            AlignedMemory.PopulatePages(_data + tensor.DataOffset, tensor.ByteLength);
        }
        return new ReadOnlySpan<byte>(_data + tensor.DataOffset, (int)tensor.ByteLength);
    }

    /// <summary>
    /// Block <paramref name="block"/> of <paramref name="blocks"/> equal blocks of a tensor's first axis, as a tensor
    /// of this file (same bytes, no copy): for a fused weight whose parts a model keeps apart, such as OpenCLIP's
    /// in_proj, which stacks q, k and v.
    /// </summary>
    internal TensorInfo RowBlock(TensorInfo tensor, int block, int blocks)
    {
        RequireOwn(tensor);
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, blocks);
        if (tensor.Shape.Length == 0 || tensor.Shape[0] % blocks != 0)
        {
            throw new InvalidFileException(Path,
                $"tensor '{tensor.Name}' of shape {TensorInfo.ShapeText(tensor.Shape)} does not split into {blocks} equal blocks of rows");
        }
        long bytes = tensor.ByteLength / blocks;
        long[] shape = [tensor.Shape[0] / blocks, .. tensor.Shape.AsSpan(1)];
        var rows = new TensorInfo($"{tensor.Name} (rows block {block} of {blocks})", tensor.DType, shape, tensor.DataOffset + block * bytes, bytes);
        _rowBlocks.Add(rows);
        return rows;
    }

    private void RequireOwn(TensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((!_byName.TryGetValue(tensor.Name, out TensorInfo? own) || !ReferenceEquals(own, tensor)) && !_rowBlocks.Contains(tensor))
        {
            throw new ArgumentException($"tensor '{tensor.Name}' does not belong to {Path}", nameof(tensor));
        }
    }

    /// <summary>
    /// Copies the tensor's stored bytes to <paramref name="destination"/> (at least <see cref="TensorInfo.ByteLength"/>
    /// bytes): from a file by positional reads, in chunks spread over the worker pool, never through the mapping.
    /// Reading weights through the mapping costs a page fault per few pages, which a VM makes expensive (its
    /// hypervisor handles each): packing a 59 MB convolution straight from the SD 1.5 UNet file's mapping took 17-22
    /// ms after the previous load had released its pages, and 8.3 ms to read it plus 6.3 ms to pack the copy. The
    /// mapping's pages are never touched, so they need no releasing.
    /// </summary>
    public void ReadStored(TensorInfo tensor, byte* destination)
    {
        RequireOwn(tensor);
        if (_handle is null)
        {
            Buffer.MemoryCopy(_data + tensor.DataOffset, destination, tensor.ByteLength, tensor.ByteLength);
            return;
        }
        GCHandle file = GCHandle.Alloc(_handle);
        try
        {
            var job = new ReadJob
            {
                File = GCHandle.ToIntPtr(file), Offset = _dataOffset + tensor.DataOffset, Destination = destination,
                Bytes = tensor.ByteLength,
            };
            int chunks = (int)((tensor.ByteLength + ReadChunkBytes - 1) / ReadChunkBytes);
            WorkerPool.Shared.Run(&ReadChunk, &job, chunks);
            if (job.Short != 0)
            {
                throw new InvalidFileException(Path, $"tensor '{tensor.Name}': the file ended before its {tensor.ByteLength} bytes (truncated after opening?)");
            }
        }
        finally
        {
            file.Free();
        }
    }

    /// <summary>Bytes per positional read: enough to amortize the call, small enough to spread a 9 MB tensor.</summary>
    private const long ReadChunkBytes = 4 << 20;

    private struct ReadJob
    {
        public nint File; // GCHandle of the SafeFileHandle
        public long Offset;
        public byte* Destination;
        public long Bytes;
        public int Short; // set when a read came back short
    }

    private static void ReadChunk(void* state, int index)
    {
        ReadJob* job = (ReadJob*)state;
        var handle = (SafeFileHandle)GCHandle.FromIntPtr(job->File).Target!;
        long start = index * ReadChunkBytes, end = Math.Min(job->Bytes, start + ReadChunkBytes);
        while (start < end)
        {
            int read = RandomAccess.Read(handle, new Span<byte>(job->Destination + start, (int)(end - start)), job->Offset + start);
            if (read <= 0)
            {
                job->Short = 1;
                return;
            }
            start += read;
        }
    }

    /// <summary>Widens an F32/F16/BF16 tensor into <paramref name="destination"/> (exact conversion).</summary>
    public void ReadFloat32(TensorInfo tensor, Span<float> destination)
    {
        if (destination.Length != tensor.ElementCount)
        {
            throw new ArgumentException($"tensor '{tensor.Name}' has {tensor.ElementCount} elements, destination holds {destination.Length}", nameof(destination));
        }
        ReadOnlySpan<byte> bytes = GetBytes(tensor);
        switch (tensor.DType)
        {
            case TensorDType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case TensorDType.F16:
                Widen.F16ToF32(MemoryMarshal.Cast<byte, ushort>(bytes), destination);
                break;
            case TensorDType.BF16:
                Widen.BF16ToF32(MemoryMarshal.Cast<byte, ushort>(bytes), destination);
                break;
            default:
                throw new InvalidFileException(Path, $"tensor '{tensor.Name}' has dtype {tensor.DType.Name()}; float weights must be F32, F16 or BF16");
        }
    }

    /// <summary>
    /// Drops this process's mapping of the tensor's pages (Linux madvise DONTNEED): after a weight has been widened
    /// and packed, its file pages need not count in the resident set, which would otherwise double the memory of a
    /// loaded model. The data stays in the OS page cache and is faulted back in if read again. A no-op in memory.
    /// </summary>
    public void ReleasePages(TensorInfo tensor)
    {
        // Never for an in-memory file: dropping anonymous pages zeroes them, and a pipeline that loads its components
        // one at a time reads the weights again on the next request.
        if (!_disposed && _view is not null)
        {
            AlignedMemory.ReleasePages(_data + tensor.DataOffset, tensor.ByteLength);
        }
    }

    /// <summary>Reads an I64/I32 tensor (index buffers such as position_ids).</summary>
    public long[] ReadInt64(TensorInfo tensor)
    {
        ReadOnlySpan<byte> bytes = GetBytes(tensor);
        return tensor.DType switch
        {
            TensorDType.I64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            TensorDType.I32 => WidenInt32(MemoryMarshal.Cast<byte, int>(bytes)),
            _ => throw new InvalidFileException(Path, $"tensor '{tensor.Name}' has dtype {tensor.DType.Name()}; integer tensors must be I64 or I32"),
        };
    }

    private static long[] WidenInt32(ReadOnlySpan<int> values)
    {
        var result = new long[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            result[i] = values[i];
        }
        return result;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_view is null)
        {
            AlignedMemory.Free(_image);
            return;
        }
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map!.Dispose();
        _handle!.Dispose();
    }
}
