using System.Buffers.Binary;

namespace Sd.Loaders.Tests;

/// <summary>EXIF data (a TIFF header and IFDs) as piexif writes A1111's, for the JPEG and WebP readers' tests.</summary>
internal static class ExifTiff
{
    /// <summary>IFD0 with only the Exif IFD pointer, the Exif IFD with only UserComment (UNDEFINED, stored after the
    /// IFD), in either byte order.</summary>
    public static byte[] WithUserComment(byte[] comment, bool little)
    {
        var tiff = new byte[44 + comment.Length];
        tiff[0] = tiff[1] = (byte)(little ? 'I' : 'M');
        Put16(tiff, 2, 42, little);
        Put32(tiff, 4, 8, little);
        Put16(tiff, 8, 1, little); // IFD0: one entry
        Put16(tiff, 10, 0x8769, little);
        Put16(tiff, 12, 4, little); // LONG
        Put32(tiff, 14, 1, little);
        Put32(tiff, 18, 26, little); // the Exif IFD; IFD0's next-IFD link (22) stays 0
        Put16(tiff, 26, 1, little);
        Put16(tiff, 28, 0x9286, little);
        Put16(tiff, 30, 7, little); // UNDEFINED
        Put32(tiff, 32, (uint)comment.Length, little);
        Put32(tiff, 36, 44, little); // next-IFD link (40) stays 0
        comment.CopyTo(tiff, 44);
        return tiff;
    }

    private static void Put16(byte[] data, int at, int value, bool little)
    {
        if (little) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(at), (ushort)value);
        else BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at), (ushort)value);
    }

    private static void Put32(byte[] data, int at, uint value, bool little)
    {
        if (little) BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(at), value);
        else BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at), value);
    }
}
