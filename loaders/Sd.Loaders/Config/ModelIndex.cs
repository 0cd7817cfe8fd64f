using System.Text.Json;

namespace Sd.Loaders.Config;

/// <summary>
/// <c>model_index.json</c>: the pipeline class and, per component folder, the (library, class) pair; null entries
/// (e.g. <c>safety_checker: [null, null]</c>) mean the component is absent.
/// </summary>
public sealed record ModelIndex(string PipelineClass, IReadOnlyDictionary<string, (string Library, string ClassName)> Components)
{
    public static ModelIndex Load(string path)
    {
        JsonConfig json = JsonConfig.Load(path);
        var components = new SortedDictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (JsonProperty property in json.Properties)
        {
            if (property.Name.StartsWith('_') || property.Value.ValueKind != JsonValueKind.Array || IsAllNull(property.Value))
            {
                continue;
            }
            string[] pair = json.GetStrings(property.Name, []);
            if (pair.Length != 2)
            {
                throw json.Wrong(property.Name, "[library, class] or [null, null]", property.Value);
            }
            components[property.Name] = (pair[0], pair[1]);
        }
        return new ModelIndex(json.GetString("_class_name", "StableDiffusionPipeline"), components);
    }

    private static bool IsAllNull(JsonElement array)
    {
        foreach (JsonElement item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Null)
            {
                return false;
            }
        }
        return true;
    }
}
