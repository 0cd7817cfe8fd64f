using System.Buffers.Binary;

namespace Sd.Loaders.Npy;

/// <summary>The element types Sd reads and writes in .npy files; all are stored little-endian.</summary>
public enum NpyDType
{
    Float32,
    Float16,
    Int64,
    Int32,
}

/// <summary>
/// A C-order (row-major) n-dimensional array as stored in a .npy file: a dtype, a shape and the raw little-endian
/// element bytes. A 0-d scalar has an empty shape and one element; any zero dimension gives an empty array.
/// </summary>
public sealed class NpyArray
{
    /// <summary>NumPy 2 allows at most 64 dimensions; the cap also keeps every header small enough for format 1.0.</summary>
    public const int MaxRank = 64;

    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="data"/> without copying it; the array owns it from now on.</summary>
    /// <exception cref="ArgumentException">The shape is invalid or does not match the data length.</exception>
    public NpyArray(NpyDType dtype, ReadOnlySpan<int> shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int itemSize = ItemSize(dtype);
        string? problem = CheckShape(shape, dtype, out long count);
        if (problem != null)
            throw new ArgumentException(problem, nameof(shape));
        if (count * itemSize != data.LongLength)
        {
            throw new ArgumentException(
                $"data is {data.LongLength} bytes, shape {FormatShape(shape)} {DTypeName(dtype)} needs {count * itemSize}",
                nameof(data));
        }
        DType = dtype;
        _shape = shape.ToArray();
        Data = data;
        ElementCount = count;
    }

    public NpyDType DType { get; }

    /// <summary>A copy of the dimensions, outermost first; empty for a 0-d scalar.</summary>
    public int[] Shape => (int[])_shape.Clone();

    public int Rank => _shape.Length;

    /// <summary>The raw little-endian element bytes in C order (not a copy).</summary>
    public byte[] Data { get; }

    public long ElementCount { get; }

    public static NpyArray FromFloat32(float[] values, ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        var data = new byte[checked(values.Length * sizeof(float))];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * sizeof(float)), values[i]);
        return new NpyArray(NpyDType.Float32, shape, data);
    }

    public static NpyArray FromFloat16(Half[] values, ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        var data = new byte[checked(values.Length * 2)];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(i * 2), values[i]);
        return new NpyArray(NpyDType.Float16, shape, data);
    }

    public static NpyArray FromInt64(long[] values, ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        var data = new byte[checked(values.Length * sizeof(long))];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(i * sizeof(long)), values[i]);
        return new NpyArray(NpyDType.Int64, shape, data);
    }

    public static NpyArray FromInt32(int[] values, ReadOnlySpan<int> shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        var data = new byte[checked(values.Length * sizeof(int))];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(i * sizeof(int)), values[i]);
        return new NpyArray(NpyDType.Int32, shape, data);
    }

    /// <summary>The elements as float32; float16 converts exactly (every half is representable as a float).</summary>
    /// <exception cref="InvalidOperationException">The dtype is not Float32 or Float16.</exception>
    public float[] ToFloat32()
    {
        var result = new float[ElementCount];
        switch (DType)
        {
            case NpyDType.Float32:
                for (int i = 0; i < result.Length; i++)
                    result[i] = BinaryPrimitives.ReadSingleLittleEndian(Data.AsSpan(i * sizeof(float)));
                return result;
            case NpyDType.Float16:
                for (int i = 0; i < result.Length; i++)
                    result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(Data.AsSpan(i * 2));
                return result;
            default:
                throw WrongType("ToFloat32", "Float32 or Float16");
        }
    }

    /// <exception cref="InvalidOperationException">The dtype is not Float16.</exception>
    public Half[] ToFloat16()
    {
        if (DType != NpyDType.Float16)
            throw WrongType("ToFloat16", "Float16");
        var result = new Half[ElementCount];
        for (int i = 0; i < result.Length; i++)
            result[i] = BinaryPrimitives.ReadHalfLittleEndian(Data.AsSpan(i * 2));
        return result;
    }

    /// <summary>The elements as int64; int32 widens exactly.</summary>
    /// <exception cref="InvalidOperationException">The dtype is not Int64 or Int32.</exception>
    public long[] ToInt64()
    {
        var result = new long[ElementCount];
        switch (DType)
        {
            case NpyDType.Int64:
                for (int i = 0; i < result.Length; i++)
                    result[i] = BinaryPrimitives.ReadInt64LittleEndian(Data.AsSpan(i * sizeof(long)));
                return result;
            case NpyDType.Int32:
                for (int i = 0; i < result.Length; i++)
                    result[i] = BinaryPrimitives.ReadInt32LittleEndian(Data.AsSpan(i * sizeof(int)));
                return result;
            default:
                throw WrongType("ToInt64", "Int64 or Int32");
        }
    }

    /// <summary>The elements as int32. Int64 is refused rather than silently narrowed.</summary>
    /// <exception cref="InvalidOperationException">The dtype is not Int32.</exception>
    public int[] ToInt32()
    {
        if (DType != NpyDType.Int32)
            throw WrongType("ToInt32", "Int32");
        var result = new int[ElementCount];
        for (int i = 0; i < result.Length; i++)
            result[i] = BinaryPrimitives.ReadInt32LittleEndian(Data.AsSpan(i * sizeof(int)));
        return result;
    }

    /// <summary>Bytes per element.</summary>
    public static int ItemSize(NpyDType dtype) => dtype switch
    {
        NpyDType.Float32 => 4,
        NpyDType.Float16 => 2,
        NpyDType.Int64 => 8,
        NpyDType.Int32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown NpyDType"),
    };

    /// <summary>The NumPy name of the dtype (float32, float16, int64, int32), for messages.</summary>
    public static string DTypeName(NpyDType dtype) => dtype switch
    {
        NpyDType.Float32 => "float32",
        NpyDType.Float16 => "float16",
        NpyDType.Int64 => "int64",
        NpyDType.Int32 => "int32",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown NpyDType"),
    };

    /// <summary>Formats a shape as Python prints a tuple: (), (3,), (2, 3). Used in headers and messages alike.</summary>
    public static string FormatShape(ReadOnlySpan<int> shape)
    {
        if (shape.Length == 1)
            return $"({shape[0]},)";
        var text = new System.Text.StringBuilder("(");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0)
                text.Append(", ");
            text.Append(shape[i]);
        }
        return text.Append(')').ToString();
    }

    /// <summary>
    /// Returns null and the element count when the shape is usable, else what is wrong with it. Shared with the
    /// reader so both refuse the same shapes; the byte size is capped so the data always fits in one .NET array.
    /// </summary>
    internal static string? CheckShape(ReadOnlySpan<int> shape, NpyDType dtype, out long count)
    {
        count = 1;
        if (shape.Length > MaxRank)
            return $"shape has {shape.Length} dimensions; at most {MaxRank} are supported";
        foreach (int dim in shape)
        {
            if (dim < 0)
                return $"negative dimension {dim} in shape {FormatShape(shape)}";
            if (dim == 0)
                count = 0; // an empty array stays empty however large its other dimensions are
        }
        long maxCount = Array.MaxLength / ItemSize(dtype);
        for (int i = 0; i < shape.Length && count != 0; i++)
        {
            // count <= maxCount < 2^31 before each step and dim < 2^31, so the product cannot overflow a long.
            count *= shape[i];
            if (count > maxCount)
            {
                count = 0;
                return $"shape {FormatShape(shape)} {DTypeName(dtype)} is too large: " +
                       $"it needs more than the {Array.MaxLength} bytes one array can hold";
            }
        }
        return null;
    }

    private InvalidOperationException WrongType(string method, string accepted) =>
        new($"{method} needs a {accepted} array, but this array is {DTypeName(DType)}");
}
