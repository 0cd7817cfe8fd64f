using System.Text;
using Sd.Loaders.Config;

namespace Sd.Loaders.Tests;

/// <summary>
/// JSON strings that parse but are not text (raw invalid UTF-8, unpaired surrogate escapes): refused when the file
/// is parsed, naming the file and the key, instead of an <see cref="InvalidOperationException"/> wherever a loader
/// first reads the string.
/// </summary>
public sealed class JsonTextTests
{
    private static InvalidFileException Refused(byte[] json) =>
        Assert.Throws<InvalidFileException>(() => JsonConfig.Parse("unet/config.json", json));

    [Fact]
    public void An_unpaired_surrogate_escape_in_a_value()
    {
        InvalidFileException e = Refused("""{"_class_name": "\ud800"}"""u8.ToArray());
        Assert.Contains("unet/config.json", e.Message);
        Assert.Contains("'_class_name' is not valid text", e.Message);
    }

    [Fact]
    public void Invalid_utf8_in_an_array_item()
    {
        byte[] json = [.. """{"down_block_types": ["ok", "x"""u8, 0xC3, 0x28, .. "\"]}"u8];
        InvalidFileException e = Refused(json);
        Assert.Contains("'down_block_types[1]' is not valid text", e.Message);
    }

    [Fact]
    public void Invalid_utf8_in_a_key()
    {
        byte[] json = [.. "{\"a\": {\""u8, 0xFF, .. "\": 1}}"u8];
        InvalidFileException e = Refused(json);
        Assert.Contains("a key under 'a' is not valid text", e.Message);
    }

    [Fact]
    public void Valid_text_of_any_script_is_accepted()
    {
        JsonConfig config = JsonConfig.Parse("config.json", Encoding.UTF8.GetBytes("""{"name": "\u00e9\u984c\ud83d\ude00", "list": [1, "b", {"c": "\u00ff"}]}"""));
        Assert.Equal("\u00e9\u984c\ud83d\ude00", config.GetString("name", ""));
    }
}
